# Sourced by the driver scripts: the repository, its Python, and the device flags.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
bin=$(dirname "$python")
if [ ! -x "$python" ]; then
  echo "$(basename "$0"): $python not found; run scripts/install.sh first" >&2
  exit 2
fi

# fairseq uses every visible GPU by itself (one process each); without one, say --cpu.
device_flags() {
  if "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo ""
  else
    echo "--cpu"
  fi
}
