#!/usr/bin/env bash
usage="Usage: scripts/generate.sh RUN_DIR [--checkpoint FILE] [--subsets 'test test1 test2'] [FAIRSEQ_FLAGS...]

Translates Multi30k test2016 (test), test2017 (test1) and mscoco2017 (test2) with fairseq-generate --beam 5
from RUN_DIR/checkpoints/checkpoint_best.pt, then scores each: tokenized lowercased BLEU (comparable with
published Multi30k numbers), sacreBLEU on detokenized output (with its signature) and the mean NFE per
sentence. Writes RUN_DIR/gen/SUBSET.txt and RUN_DIR/results.json. FAIRSEQ_FLAGS go to fairseq-generate
after this script's own, so they replace them: each translation is at most 1.2 x its source + 10 tokens
long (node_transformer/length_bound.py; an early checkpoint of an adaptive NODE decoder otherwise repeats
a word up to fairseq's 200 tokens, recomputing its prefix at each one: hours for a test set); give
--max-len-a A --max-len-b B for another bound (--max-len-a 0 --max-len-b 200 is fairseq's default).
Environment: DATA (default data/multi30k_en_de/bin), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; "") echo "$usage" >&2; exit 2 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run=$1; shift
[ -d "$run" ] || { echo "generate.sh: no run directory '$run'" >&2; exit 2; }
checkpoint=$run/checkpoints/checkpoint_best.pt
subsets="test test1 test2"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoint) [ $# -ge 2 ] || { echo "generate.sh: --checkpoint needs a file" >&2; exit 2; }; checkpoint=$2; shift 2 ;;
    --subsets) [ $# -ge 2 ] || { echo "generate.sh: --subsets needs a list" >&2; exit 2; }; subsets=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
[ -f "$checkpoint" ] || { echo "generate.sh: no checkpoint '$checkpoint'" >&2; exit 2; }
data=${DATA:-$repo/data/multi30k_en_de/bin}
[ -f "$data/dict.en.txt" ] || { echo "generate.sh: no binarised data in '$data'" >&2; exit 2; }

read -r -a bound <<< "$("$python" "$repo/node_transformer/length_bound.py")"

mkdir -p "$run/gen"
cd "$repo"
for subset in $subsets; do
  echo "translating $subset" >&2
  # --required-batch-size-multiple 1: fairseq 0.12 otherwise drops the last, smaller batch (issue #5036).
  # shellcheck disable=SC2046
  "$bin/fairseq-generate" "$data" --user-dir "$repo/node_transformer" --task node_translation \
    --path "$checkpoint" --gen-subset "$subset" --beam 5 --remove-bpe --max-tokens 4096 \
    --required-batch-size-multiple 1 $(device_flags) "${bound[@]}" "${extra[@]}" > "$run/gen/$subset.txt"
done
# shellcheck disable=SC2086
"$python" "$repo/scripts/score.py" "$run" --raw-dir "$data/../raw" --subsets $subsets
