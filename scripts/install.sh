#!/usr/bin/env bash
# Creates (or refreshes) a virtual environment with torch, fairseq 0.12 and this package.
usage="Usage: scripts/install.sh [--venv DIR]   (default DIR: .venv in the repository)
Environment: TORCH_SPEC (default torch==2.13.0) picks the torch build, e.g. a CUDA one."
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) [ $# -ge 2 ] || { echo "install.sh: --venv needs a directory" >&2; echo "$usage" >&2; exit 2; }; venv=$2; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1'" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done
torch_spec=${TORCH_SPEC:-torch==2.13.0}

# Re-run only when the install recipe changed.
stamp="$venv/.node-transformer-installed"
recipe=$(cat "$repo/setup.py" "$repo/scripts/install.sh" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ]; then
  exit 0
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else "Python >= 3.8 is required")'
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
# torch first, and alone: fairseq's build below must compile against this torch, not pull another one.
"${pip[@]}" "$torch_spec"
"${pip[@]}" numpy cython setuptools wheel
if "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  fairseq_spec="fairseq-fixed==0.12.3.1"
else
  fairseq_spec="fairseq==0.12.2"
fi
"${pip[@]}" --no-build-isolation "$fairseq_spec"
"${pip[@]}" --no-build-isolation -e "$repo[test]"
echo "$recipe" > "$stamp"
echo "installed into $venv"
