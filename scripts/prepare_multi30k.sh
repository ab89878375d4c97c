#!/usr/bin/env bash
# Prepare Multi30k EN-DE for fairseq (see --help). Uses .venv (scripts/install.sh) unless PYTHON is set.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || { echo "prepare_multi30k.sh: $python not found; run scripts/install.sh first" >&2; exit 2; }
exec "$python" "$repo/scripts/multi30k.py" "$@"
