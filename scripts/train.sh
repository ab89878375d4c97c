#!/usr/bin/env bash
usage="Usage: scripts/train.sh configs/NAME.args [FAIRSEQ_FLAGS...]

Trains one experiment with fairseq-train. The config holds fairseq flags (one or more per line, # comments,
@FILE includes another config: see node_transformer/experiment_config.py); FAIRSEQ_FLAGS are appended and
override it. Writes runs/NAME/{checkpoints,tb,train.log}; re-running on an
existing run directory resumes from its checkpoint_last.pt. RUN/data records the dictionaries and BPE codes
for scripts/translate.sh. Uses every GPU when CUDA is available, else --cpu.
Environment: DATA (default data/multi30k_en_de/bin), RUNS (default runs), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; "") echo "$usage" >&2; exit 2 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
config=$1; shift
[ -f "$config" ] || { echo "train.sh: no config file '$config'" >&2; exit 2; }
data=${DATA:-$repo/data/multi30k_en_de/bin}
[ -f "$data/dict.en.txt" ] || { echo "train.sh: no binarised data in '$data' (run scripts/prepare_multi30k.sh)" >&2; exit 2; }
name=$(basename "$config" .args)
run=${RUNS:-$repo/runs}/$name
mkdir -p "$run/checkpoints"
# The run keeps what translating it needs of the data (scripts/translate.sh, node_transformer.hub).
"$python" -m node_transformer.hub record "$data" "$run" > /dev/null

words=$("$python" -m node_transformer.experiment_config "$config") || exit 2
[ -n "$words" ] || { echo "train.sh: '$config' holds no flags" >&2; exit 2; }
mapfile -t config_flags <<< "$words"

cd "$repo"
# shellcheck disable=SC2046
"$bin/fairseq-train" "$data" --user-dir "$repo/node_transformer" "${config_flags[@]}" \
  --save-dir "$run/checkpoints" --tensorboard-logdir "$run/tb" $(device_flags) "$@" 2>&1 | tee -a "$run/train.log"
exit "${PIPESTATUS[0]}"
