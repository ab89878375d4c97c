#!/usr/bin/env bash
usage="Usage: scripts/train.sh configs/NAME.args [FAIRSEQ_FLAGS...]

Trains one experiment with fairseq-train. The config holds fairseq flags (one or more per line, # comments,
@FILE includes another config: see node_experiments/experiment_config.py); FAIRSEQ_FLAGS are appended and
override it. Writes the run directory runs/NAME (its layout: node_experiments/run_dir.py); re-running on an
existing run directory resumes from its checkpoint_last.pt. The run records the dictionaries and BPE codes
for scripts/translate.sh. Uses every GPU when CUDA is available, else --cpu.
Environment: DATA (default data/multi30k_en_de/bin), RUNS (default runs), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; "") echo "$usage" >&2; exit 2 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$python" -m node_experiments.run_dir train "$@"
