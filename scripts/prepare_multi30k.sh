#!/usr/bin/env bash
# Prepare Multi30k EN-DE for fairseq (see --help). Uses .venv (scripts/install.sh) unless PYTHON is set.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
# multi30k.py's --help needs only the standard library, so any python3 shows it before install.sh has run.
for arg in "$@"; do
  case "$arg" in -h|--help) [ -x "$python" ] || python=python3; exec "$python" "$repo/scripts/multi30k.py" --help ;; esac
done
[ -x "$python" ] || { echo "prepare_multi30k.sh: $python not found; run scripts/install.sh first" >&2; exit 2; }
exec "$python" "$repo/scripts/multi30k.py" "$@"
