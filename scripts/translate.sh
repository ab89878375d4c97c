#!/usr/bin/env bash
usage="Usage: scripts/translate.sh RUN_DIR [--beam N] [--max-len-a A --max-len-b B] [--checkpoint FILE] [--verbose] [FILE]

Translates raw English lines (FILE, else standard input) with RUN_DIR's checkpoint_best.pt: the training
data's own preparation on the way in, detokenised German out, one line per input line, in order, each
at most A x its source + B tokens long (default 1.2 x source + 10, node_experiments/length_bound.py).
--verbose adds each sentence's prepared source, score and NFE on stderr. Details: scripts/translate.py --help.
Environment: PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; "") echo "$usage" >&2; exit 2 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$python" "$repo/scripts/translate.py" "$@"
