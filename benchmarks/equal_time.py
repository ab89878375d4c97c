"""The equal-time yardstick: each config trained for the same wall time on Multi30k, strictly one after
another, with identical non-NODE hyperparameters, then translated; one table.

    python benchmarks/equal_time.py [--minutes 9] [--hparams configs/demo.args] [CONFIG ...]

A config contributes only the flags that shape the model and its solves (MODEL_FLAGS below and every
--node-* flag); everything else (optimiser, schedule, batch size, dropout, ...) comes from --hparams for
every run, so the runs differ in architecture alone. The first config is the reference whose time to
reach each run's best validation loss the table reports. Defined on node_experiments.runner (a time
budget, test2016 translated, every run trained afresh).
"""
import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from node_experiments.experiment_config import config_path, read_flag_groups
from node_experiments.report import Table, publish
from node_experiments.run_dir import REPO, check_data, default_data
from node_experiments.runner import Experiment, Runner, RunnerError, TimeBudget, check_experiments, common_update
from node_experiments.training_log import loss_at_update, time_to_reach

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_CONFIGS = ["transformer_1layer", "demo", "node_fast_rk4", "node_fast_separated_euler"]
MODEL_FLAGS = {"--arch", "--encoder-layers", "--decoder-layers", "--activation-fn", "--encoder-normalize-before",
               "--decoder-normalize-before"}


def make_parser(default_configs=DEFAULT_CONFIGS, minutes=9.0, work="equal_time", description=__doc__):
    """The command line of an equal-time benchmark (this one, and benchmarks/regularisers.py)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=default_configs,
                        help="config names (configs/NAME.args) or paths; the first is the reference "
                             f"(default: {' '.join(default_configs)})")
    parser.add_argument("--minutes", type=float, default=minutes, help=f"training wall time of each run (default {minutes:g})")
    parser.add_argument("--hparams", type=Path, default=REPO / "configs" / "demo.args",
                        help="the config whose non-model flags every run uses (default configs/demo.args)")
    parser.add_argument("--validate-every", type=int, default=200, metavar="UPDATES",
                        help="validation interval, for the time-to-loss column (default 200)")
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--work", type=Path, default=REPO / "runs" / work,
                        help=f"run directories (default runs/{work}); an existing run is trained again")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the table and its JSON go")
    return parser


def checked(parser, args):
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.validate_every < 1:
        parser.error("--validate-every must be a positive number of updates")
    for problem in (check_data(args.data), check_experiments(args.configs)):
        if problem:
            parser.error(problem)
    return args


def parse_args(argv=None):
    parser = make_parser()
    return checked(parser, parser.parse_args(argv))


def is_model_flag(flag):
    return flag in MODEL_FLAGS or flag.startswith("--node-")


def experiment(config, hparams) -> Experiment:
    """--hparams' flags less the model's, and the config's model flags."""
    groups = {flag: values for flag, values in read_flag_groups(hparams).items() if not is_model_flag(flag)}
    groups.update({flag: values for flag, values in read_flag_groups(config).items() if is_model_flag(flag)})
    return Experiment(config_path(config).stem, groups)


def run_all(args, subsets=("test",), keep=False):
    """Every config of ARGS under the time budget: ({name: RunResult}, the names of the runs kept)."""
    runner = Runner(TimeBudget(args.minutes, args.validate_every), args.work, args.data, subsets, keep=keep)
    try:
        results = runner.run_all([experiment(config_path(name), args.hparams) for name in args.configs])
    except RunnerError as error:
        raise SystemExit(f"{Path(sys.argv[0]).name}: {error}")
    return {result.experiment: result for result in results}, runner.kept


def row(name, result, reference, at_update):
    curve = result.curve
    at_equal = loss_at_update(curve, at_update) if at_update else None
    best = min(curve, key=lambda point: point[2]) if curve else None
    reach = time_to_reach(reference.curve, best[2]) if best else None
    nfe = ", ".join(f"{key[4:].replace('_', ' ')} {first:.0f}→{last:.0f}" for key, (first, last) in result.nfe.items())
    test = result.translation.get("test2016_flickr", {})
    speed, reference_speed = test.get("sentences_per_second"), \
        reference.translation.get("test2016_flickr", {}).get("sentences_per_second")
    name = name + (" (stopped)" if result.stopped else "")
    return [name, result.updates, f"{result.seconds_per_update:.2f}", nfe or "-",
            f"{best[2]:.2f} (update {best[1]})" if best else "-",
            f"{at_equal:.2f}" if at_equal is not None else "-",
            f"{reach / best[0]:.2f}" if reach is not None and best[0] else "not reached",
            f"{test['tokenized_bleu']:.1f}" if test else "-", f"{speed:.1f}" if speed else "-",
            f"{speed / reference_speed:.2f}" if speed and reference_speed else "-"]


def main(argv=None):
    args = parse_args(argv)
    results, _ = run_all(args)
    reference_name = next(iter(results))
    reference = results[reference_name]
    at_update = common_update(list(results.values()), args.validate_every)
    stopped = "".join(f" {name} stopped: {r.stopped}." for name, r in results.items() if r.stopped)
    table = Table(
        "equal_time", f"Equal time: {args.minutes:g} minutes of training each, Multi30k EN-DE, hyperparameters of "
                      f"{args.hparams.name}",
        ["config", "updates", "s/update", "NFE per solve (first→last logged)", "best valid loss",
         f"valid loss at update {at_update or '-'} (equal updates)", f"{reference_name} time to that loss / this run's", "BLEU test2016 (tok, beam 5)", "sentences/s",
         f"x {reference_name} speed"],
        [row(name, result, reference, at_update) for name, result in results.items()],
        note=f"Command: python benchmarks/equal_time.py --minutes {args.minutes:g} {' '.join(map(str, args.configs))}. "
             f"Valid loss is fairseq's (label-smoothed, base 2), validated every {args.validate_every} updates; "
             f"times count from the start of training, validation included. A time ratio below 1 means "
             f"{reference_name} reached that run's best loss sooner." + stopped)
    publish(table, args.out)
    (args.out / "equal_time.json").write_text(json.dumps({name: asdict(r) for name, r in results.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
