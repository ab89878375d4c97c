#!/usr/bin/env bash
usage="Usage: scripts/gpu_check.sh [--updates N] [--work DIR] [--out DIR] [EXPERIMENT ...]

The converged study's schedule on a CUDA device for N updates (default 400) of each NODE variant and the
classic 1+1 (the study runner itself: trained, averaged, translated, scored), then their seconds per
update and validation losses beside the CPU records in benchmarks/results/converged/records. Writes
OUT/gpu_check.md (default benchmarks/results/gpu_check). Under 10 minutes on one GPU. More options
(--allow-cpu, --cpu-records, --data): scripts/gpu_check.py --help.
Environment: DATA (default data/multi30k_en_de/bin), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$python" "$repo/scripts/gpu_check.py" "$@"
