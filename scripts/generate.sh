#!/usr/bin/env bash
usage="Usage: scripts/generate.sh RUN_DIR [--checkpoint FILE] [--subsets 'test test1 test2'] [FAIRSEQ_FLAGS...]

Translates Multi30k test2016 (test), test2017 (test1) and mscoco2017 (test2) with fairseq-generate --beam 5
from RUN_DIR/checkpoints/checkpoint_best.pt, then scores each: tokenized lowercased BLEU (comparable with
published Multi30k numbers), sacreBLEU on detokenized output (with its signature) and the mean NFE per
sentence. Writes RUN_DIR/gen/SUBSET.txt and RUN_DIR/results.json. FAIRSEQ_FLAGS go to fairseq-generate
after this script's own, so they replace them: each translation is at most 1.2 x its source + 10 tokens
long (node_experiments/length_bound.py; an early checkpoint of an adaptive NODE decoder otherwise repeats
a word up to fairseq's 200 tokens, recomputing its prefix at each one: hours for a test set); give
--max-len-a A --max-len-b B for another bound (--max-len-a 0 --max-len-b 200 is fairseq's default).
Environment: DATA (default data/multi30k_en_de/bin), PYTHON (default .venv/bin/python)."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; "") echo "$usage" >&2; exit 2 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$python" -m node_experiments.run_dir translate "$@"
