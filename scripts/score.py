"""Score fairseq-generate outputs of a run again: tokenized BLEU, sacreBLEU (detokenized) and NFE per sentence
(node_experiments.scoring; scripts/generate.sh scores as it translates)."""
# Third-party modules are imported where used, after argument parsing, so --help works before install.sh.
import argparse
import json
import sys
from pathlib import Path

def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/score.py", description=__doc__)
    parser.add_argument("run", type=Path, help="run directory with gen/SUBSET.txt from fairseq-generate")
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw (untokenized) references: SUBSET.de")
    parser.add_argument("--subsets", nargs="+", help="fairseq's test set names (default: test test1 test2)")
    args = parser.parse_args(argv)
    from node_experiments.run_dir import SUBSETS, RunDir
    from node_experiments.scoring import ScoringError, print_scores, score

    args.subsets = args.subsets or list(SUBSETS)
    run = RunDir(args.run)
    try:
        results = score(run, args.raw_dir, args.subsets)
    except ScoringError as error:
        parser.exit(1, f"score.py: {error}\n")
    run.scores_file.write_text(json.dumps(results, indent=1) + "\n")
    print_scores(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
