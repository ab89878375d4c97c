#!/usr/bin/env bash
usage="Usage: scripts/study.sh [--converged | --minutes M] [--all-test-sets] [EXPERIMENT ...]

Trains every experiment of the study (or those named: config names or paths) one after another, either on
the study's one schedule to each run's plateau or update cap (--converged, the default: resumable, run
directories under ~/node-transformer-runs/converged, final model the average of the last 10 checkpoints,
all three test sets translated) or for a wall-time budget of early training (--minutes M, test2016 only
unless --all-test-sets), and writes the results table and figures under benchmarks/results. Re-running the
same command keeps the finished experiments and goes on with the rest. More options (--list, --work,
--out, --data, --schedule, --validate-every, --report, --progress, --carry): scripts/study.py --help.
Environment: DATA (default data/multi30k_en_de/bin), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$python" "$repo/scripts/study.py" "$@"
