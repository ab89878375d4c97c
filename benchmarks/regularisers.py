"""Do RNODE's regularisers and STEER keep the solver's work flat? NODE runs with and without each, trained
for the same wall time on Multi30k, strictly one after another; one table and the figures.

    python benchmarks/regularisers.py [--minutes 20] [CONFIG ...]

The first config is the unregularised reference (default: demo demo_kinetic demo_jacobian demo_steer).
Every run takes its non-model flags from --hparams (configs/demo.args), as in equal_time.py, whose
training it reuses. The table gives, for the decoder's forward solves, the NFE per solve logged at
update 100 (the mean over updates 51-100), its largest value after that and its last value; seconds
per update; the best validation loss; and the regularisers' integrals per position. The figures
(node_transformer.plot) go to OUT/regularisers/: NFE, best valid loss and the regularisers against updates.
"""
import argparse
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import equal_time  # noqa: E402

REPO = equal_time.REPO
DEFAULT_CONFIGS = ["demo", "demo_kinetic", "demo_jacobian", "demo_steer"]
BASELINE_UPDATE = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS,
                        help=f"config names or paths; the first is the reference (default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall time of each run (default 20)")
    parser.add_argument("--hparams", type=Path, default=REPO / "configs" / "demo.args")
    parser.add_argument("--validate-every", type=int, default=200, metavar="UPDATES")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "multi30k_en_de" / "bin")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "regularisers",
                        help="run directories (default runs/regularisers); an existing run is trained again")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--keep", action="store_true",
                        help="reuse the runs in --work that finished training for the same --minutes (a config added "
                             "later trains alone; the table says which runs were kept)")
    return equal_time.check_budget_and_data(parser, parser.parse_args(argv))


def summarise(inner, key="nfe_dec_fwd"):
    """The NFE at BASELINE_UPDATE, the largest after it and the last; whether it stayed at or below."""
    points = [(row["num_updates"], row[key]) for row in inner if key in row]
    at_baseline = next((value for update, value in points if update >= BASELINE_UPDATE), None)
    later = [value for update, value in points if update > BASELINE_UPDATE]
    return {"at_baseline": at_baseline, "max_after": max(later) if later else None,
            "last": points[-1][1] if points else None,
            "flat": bool(later) and at_baseline is not None and max(later) <= at_baseline}


def finished_training(run, minutes):
    """Whether RUN holds a training that ended for this budget (its command and its last log line)."""
    command, log = run / "command.txt", run / "train.log"
    if not (command.is_file() and log.is_file()):
        return False
    return f"--stop-time-hours {minutes / 60:.6f}" in command.read_text() and "done training in" in log.read_text()


def started_at(run):
    """When RUN's training was launched (its command file), to tell runs of different invocations apart."""
    return datetime.fromtimestamp((run / "command.txt").stat().st_mtime).strftime("%Y-%m-%d %H:%M")


def _first_last(inner, key):
    values = [row[key] for row in inner if key in row]
    return f"{values[0]:.3g} → {values[-1]:.3g}" if values else "-"


def _valid_nfe(valid):
    values = [row["nfe_dec_fwd"] for row in valid if "nfe_dec_fwd" in row]
    return f"{values[0]:.1f} → {values[-1]:.1f}" if values else "-"


def row(name, result, reference_loss):
    nfe, best = result["nfe_dec_fwd"], result["best"]
    return [name, result["updates"], f"{result['train_seconds'] / max(result['updates'], 1):.2f}",
            f"{nfe['at_baseline']:.1f}" if nfe["at_baseline"] is not None else "-",
            f"{nfe['max_after']:.1f}" if nfe["max_after"] is not None else "-",
            f"{nfe['last']:.1f}" if nfe["last"] is not None else "-",
            "yes" if nfe["flat"] else "no", _valid_nfe(result["valid"]),
            f"{best[2]:.2f} (update {best[1]})" if best else "-",
            "yes" if best and best[2] <= reference_loss else "no",
            _first_last(result["inner"], "node_kinetic_dec"), _first_last(result["inner"], "node_jacobian_dec")]


def main(argv=None):
    args = parse_args(argv)
    from report import Table, publish

    from node_transformer.training_log import best_point, read_training

    from node_transformer.experiment_config import config_path

    configs = [config_path(name) for name in args.configs]
    for config in configs:
        if not config.is_file():
            raise SystemExit(f"regularisers.py: no config file '{config}'")
    results, kept = {}, []
    for config in configs:  # strictly one after another
        run = args.work / config.stem
        if args.keep and finished_training(run, args.minutes):
            kept.append(config.stem)
        else:
            started = time.time()
            print(f"training {config.stem} for {args.minutes:g} min", flush=True)
            equal_time.train(config, args, run)
            print(f"  done in {(time.time() - started) / 60:.1f} min", flush=True)
        training = read_training((run / "train.log").read_text())
        results[config.stem] = {**training, "nfe_dec_fwd": summarise(training["inner"]),
                                "best": best_point(training["curve"])}
    reference = results[configs[0].stem]
    reference_loss = reference["best"][2] if reference["best"] else float("inf")
    table = Table(
        "regularisers",
        f"Regularisers: {args.minutes:g} minutes of training each, Multi30k EN-DE, hyperparameters of {args.hparams.name}",
        ["config", "updates", "s/update", f"decoder fwd NFE per solve at update {BASELINE_UPDATE}",
         "largest after", "last", "stays at or below", "validation NFE per solve (first → last)", "best valid loss",
         f"no worse than {configs[0].stem}", "node_kinetic_dec (first → last)", "node_jacobian_dec (first → last)"],
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
    from node_transformer.plot import plot_runs

    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq leaves the root logger chatty
    for path in plot_runs([args.work / config.stem for config in configs], args.out / "regularisers", ("png",)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
