"""Do RNODE's regularisers and STEER keep the solver's work flat? NODE runs with and without each, trained
for the same wall time on Multi30k, strictly one after another; one table and the figures.

    python benchmarks/regularisers.py [--minutes 20] [CONFIG ...]

The first config is the unregularised reference (default: demo demo_kinetic demo_jacobian demo_steer).
Every run takes its non-model flags from --hparams (configs/demo.args), as in equal_time.py, whose
training it reuses. The table gives, for the decoder's forward solves, the NFE per solve logged at
update 100 (the mean over updates 51-100), its largest value after that and its last value; seconds
per update; the best validation loss; and the regularisers' integrals per position. The figures
(node_experiments.plot) go to OUT/regularisers/: NFE, best valid loss and the regularisers against updates.
"""
import json
import logging
import sys
from datetime import datetime

import equal_time
from node_experiments.report import Table, publish
from node_experiments.run_dir import RunDir
from node_experiments.training_log import best_point

DEFAULT_CONFIGS = ["demo", "demo_kinetic", "demo_jacobian", "demo_steer"]
BASELINE_UPDATE = 100


def parse_args(argv=None):
    parser = equal_time.make_parser(DEFAULT_CONFIGS, minutes=20.0, work="regularisers", description=__doc__)
    parser.add_argument("--keep", action="store_true",
                        help="keep the runs in --work that finished training with the same flags and budget (a "
                             "config added later trains alone; the table says which runs were kept)")
    return equal_time.checked(parser, parser.parse_args(argv))


def summarise(inner, key="nfe_dec_fwd"):
    """The NFE at BASELINE_UPDATE, the largest after it and the last; whether it stayed at or below."""
    points = [(row["num_updates"], row[key]) for row in inner if key in row]
    at_baseline = next((value for update, value in points if update >= BASELINE_UPDATE), None)
    later = [value for update, value in points if update > BASELINE_UPDATE]
    return {"at_baseline": at_baseline, "max_after": max(later) if later else None,
            "last": points[-1][1] if points else None,
            "flat": bool(later) and at_baseline is not None and max(later) <= at_baseline}


def started_at(run):
    """When RUN's training was launched (its command file), to tell runs of different invocations apart."""
    return datetime.fromtimestamp(RunDir(run).command_file.stat().st_mtime).strftime("%Y-%m-%d %H:%M")


def _first_last(inner, key):
    values = [row[key] for row in inner if key in row]
    return f"{values[0]:.3g} → {values[-1]:.3g}" if values else "-"


def _valid_nfe(valid):
    values = [row["nfe_dec_fwd"] for row in valid if "nfe_dec_fwd" in row]
    return f"{values[0]:.1f} → {values[-1]:.1f}" if values else "-"


def row(name, result, reference_loss):
    nfe, best = result["nfe_dec_fwd"], result["best"]
    return [name, result["updates"], f"{result['seconds_per_update']:.2f}",
            f"{nfe['at_baseline']:.1f}" if nfe["at_baseline"] is not None else "-",
            f"{nfe['max_after']:.1f}" if nfe["max_after"] is not None else "-",
            f"{nfe['last']:.1f}" if nfe["last"] is not None else "-",
            "yes" if nfe["flat"] else "no", _valid_nfe(result["valid"]),
            f"{best.loss:.2f} (update {best.updates})" if best else "-",
            "yes" if best and best.loss <= reference_loss else "no",
            _first_last(result["inner"], "node_kinetic_dec"), _first_last(result["inner"], "node_jacobian_dec")]


def main(argv=None):
    args = parse_args(argv)
    outcomes, kept = equal_time.run_all(args, subsets=(), keep=args.keep)  # training alone: no translation
    results = {}
    for name, outcome in outcomes.items():
        training = RunDir(args.work / name).training()
        results[name] = {"updates": outcome.updates, "seconds_per_update": outcome.seconds_per_update,
                         "inner": training.inner, "valid": training.valid, "nfe_dec_fwd": summarise(training.inner),
                         "best": best_point(training.curve)}
    configs = [args.work / name for name in results]
    reference = results[configs[0].name]
    reference_loss = reference["best"].loss if reference["best"] else float("inf")
    table = Table(
        "regularisers",
        f"Regularisers: {args.minutes:g} minutes of training each, Multi30k EN-DE, hyperparameters of {args.hparams.name}",
        ["config", "updates", "s/update", f"decoder fwd NFE per solve at update {BASELINE_UPDATE}",
         "largest after", "last", "stays at or below", "validation NFE per solve (first → last)", "best valid loss",
         f"no worse than {configs[0].name}", "node_kinetic_dec (first → last)", "node_jacobian_dec (first → last)"],
        [row(name, result, reference_loss) for name, result in results.items()],
        note=f"Command: python benchmarks/regularisers.py --minutes {args.minutes:g}{' --keep' if args.keep else ''} "
             f"{' '.join(args.configs)}. "
             f"NFE values are train_inner means over 50 updates (the value at update {BASELINE_UPDATE} covers "
             f"updates {BASELINE_UPDATE - 49}-{BASELINE_UPDATE}). Valid loss is fairseq's (label-smoothed, base 2), "
             f"validated every {args.validate_every} updates. The integrals are per target position, logged "
             f"only by the runs that compute them." +
             (f" Kept from an earlier invocation (--keep): {', '.join(kept)}." if kept else "") +
             " Training started at: " + ", ".join(f"{name} {started_at(args.work / name)}" for name in results) + ".")
    publish(table, args.out)
    (args.out / "regularisers.json").write_text(json.dumps(results, indent=1) + "\n")
    from node_experiments.plot import plot_runs

    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq leaves the root logger chatty
    for path in plot_runs(configs, args.out / "regularisers", ("png",)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
