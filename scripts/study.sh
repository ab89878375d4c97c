#!/usr/bin/env bash
usage="Usage: scripts/study.sh [--minutes M | --full] [--all-test-sets] [EXPERIMENT ...]

Trains every experiment of the study (or those named: config names or paths) one after another for the
same wall-time budget (--minutes, default 10) or on each config's full schedule (--full, for a GPU machine),
translates test2016 with beam 5 (all three test sets with --all-test-sets), and writes
benchmarks/results/study.md, study.json and study/*.png. Re-running the same command keeps the finished
experiments and goes on with the rest. More options (--list, --work, --out, --data, --validate-every):
scripts/study.py --help.
Environment: DATA (default data/multi30k_en_de/bin), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$python" "$repo/scripts/study.py" "$@"
