#!/usr/bin/env bash
usage="Usage: [MULTI30K_DIR=DIR] scripts/demo.sh

The whole job on a small default: installs into .venv, prepares Multi30k EN-DE (from MULTI30K_DIR, else
downloaded), trains configs/demo.args (a NODE decoder, ~10 minutes on 2 CPU cores), translates the three
test sets with beam 5, scores BLEU and NFE, and plots loss and NFE to runs/demo/plots/.
Re-running resumes or reuses what is done."
set -euo pipefail
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; "") ;; *) echo "$usage" >&2; exit 2 ;; esac
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$(date +%s)
bash "$repo/scripts/install.sh"
bash "$repo/scripts/prepare_multi30k.sh" --out "$repo/data/multi30k_en_de"
export DATA=$repo/data/multi30k_en_de/bin
bash "$repo/scripts/train.sh" "$repo/configs/demo.args"
bash "$repo/scripts/generate.sh" "$repo/runs/demo"
"${PYTHON:-$repo/.venv/bin/python}" -m node_experiments.plot "$repo/runs/demo" --out "$repo/runs/demo/plots"
echo "demo finished in $(( ($(date +%s) - start) / 60 )) min: runs/demo/results.json, runs/demo/plots/nfe.png"
