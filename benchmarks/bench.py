"""Benchmarks: what a NODE block costs, against the classic Transformer and against plain torchdiffeq.

    python benchmarks/bench.py [--quick] [--only NAME ...] [--out benchmarks/results]

Each benchmark prints a table and writes it (Markdown) to OUT/NAME.md. Ratios are measured side by side in
one run; absolute times are context. --quick runs tiny sizes in seconds (the test suite uses it).
"""
import argparse
import logging
import sys
from pathlib import Path

from node_experiments.run_dir import default_data

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ["overhead", "solver_share", "seminorm", "update_cost", "generation", "gradient_modes",
              "side_by_side"]
ON_SYNTHETIC_DATA = {"seminorm", "update_cost", "generation", "gradient_modes", "side_by_side"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds: check that every benchmark runs")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS)
    parser.add_argument("--out", type=Path, help="where the tables go (default benchmarks/results, "
                                                 "benchmarks/results/quick with --quick)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/node-transformer-bench"),
                        help="where the synthetic benchmark data is kept")
    parser.add_argument("--multi30k", type=Path, default=default_data(),
                        help="binarised Multi30k for gradient_modes and side_by_side (default $DATA or "
                             "data/multi30k_en_de/bin); "
                             "without it, and with --quick, the synthetic data")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS / ("quick" if args.quick else "")
    return args


def run_benchmarks(only, quick, work, multi30k):
    """Yield the tables of the benchmarks named in ``only``, in BENCHMARKS order, each as soon as it is done."""
    # Imported here so that --help needs neither torch nor fairseq.
    import model_benchmarks
    import solver_benchmarks
    from block_problem import FULL_SIZE, QUICK_SIZE

    size = QUICK_SIZE if quick else FULL_SIZE
    repeats = 1 if quick else 5
    if "overhead" in only:
        yield solver_benchmarks.overhead(size, repeats)
    if "solver_share" in only:
        yield solver_benchmarks.solver_share(size, repeats)
    if only & ON_SYNTHETIC_DATA:
        data = model_benchmarks.synthetic_data(work / ("quick" if quick else "full"), quick)
        model_repeats = 1 if quick else 3
        if "seminorm" in only:
            yield model_benchmarks.seminorm(data, size, quick, model_repeats)
        if "update_cost" in only:
            yield model_benchmarks.update_costs(data, quick, model_repeats)
        if "generation" in only:
            yield model_benchmarks.generation(data, quick)
        on_multi30k = not quick and (multi30k / "dict.en.txt").is_file()
        if "gradient_modes" in only:
            yield model_benchmarks.gradient_modes(multi30k if on_multi30k else data, on_multi30k, quick,
                                                  model_repeats)
        if "side_by_side" in only:
            yield model_benchmarks.side_by_side(multi30k if on_multi30k else data, on_multi30k, quick,
                                                2 if quick else 10)


def main(argv=None):
    args = parse_args(argv)
    logging.disable(logging.WARNING)
    from node_experiments.report import publish

    for table in run_benchmarks(set(args.only or BENCHMARKS), args.quick, args.work, args.multi30k):
        publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
