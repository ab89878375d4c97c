# Sourced by the driver scripts: the repository and its Python, with the repository's packages importable.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
  echo "$(basename "$0"): $python not found; run scripts/install.sh first" >&2
  exit 2
fi
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
