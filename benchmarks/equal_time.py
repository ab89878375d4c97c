"""The equal-time yardstick: each config trained for the same wall time on Multi30k, strictly one after
another, with identical non-NODE hyperparameters, then translated; one table.

    python benchmarks/equal_time.py [--minutes 9] [--hparams configs/demo.args] [CONFIG ...]

A config contributes only the flags that shape the model and its solves (MODEL_FLAGS below and every
--node-* flag); everything else (optimiser, schedule, batch size, dropout, ...) comes from --hparams for
every run, so the runs differ in architecture alone. The first config is the reference whose time to
reach each run's best validation loss the table reports.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_CONFIGS = ["transformer_1layer", "demo", "node_fast_rk4", "node_fast_separated_euler"]
MODEL_FLAGS = {"--arch", "--encoder-layers", "--decoder-layers", "--activation-fn", "--encoder-normalize-before",
               "--decoder-normalize-before"}
# Not taken from --hparams: the runs stop on time, validate often enough to time their progress, and
# save only what translation needs.
RUN_FLAGS = ["--max-epoch", "0", "--max-update", "0", "--no-epoch-checkpoints", "--no-last-checkpoints",
             "--log-format", "simple", "--log-interval", "50"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS,
                        help="config names (configs/NAME.args) or paths; the first is the reference "
                             f"(default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--minutes", type=float, default=9.0, help="training wall time of each run (default 9)")
    parser.add_argument("--hparams", type=Path, default=REPO / "configs" / "demo.args",
                        help="the config whose non-model flags every run uses (default configs/demo.args)")
    parser.add_argument("--validate-every", type=int, default=200, metavar="UPDATES",
                        help="validation interval, for the time-to-loss column (default 200)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "multi30k_en_de" / "bin")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "equal_time",
                        help="run directories (default runs/equal_time); an existing run is trained again")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where equal_time.md/.json go")
    return check_budget_and_data(parser, parser.parse_args(argv))


def check_budget_and_data(parser, args):
    """--minutes and --data, checked for every equal-time benchmark."""
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if not (args.data / "dict.en.txt").is_file():
        parser.error(f"--data {args.data}: no binarised Multi30k there (run scripts/prepare_multi30k.sh)")
    return args


def run_flags(config, hparams, minutes, validate_every):
    """--hparams' flags less the model's, the config's model flags, and the run's own."""
    from node_transformer.experiment_config import read_flag_groups

    def is_model_flag(flag):
        return flag in MODEL_FLAGS or flag.startswith("--node-")

    groups = {flag: values for flag, values in read_flag_groups(hparams).items() if not is_model_flag(flag)}
    groups.update({flag: values for flag, values in read_flag_groups(config).items() if is_model_flag(flag)})
    words = [word for flag, values in groups.items() for word in (flag, *values)]
    return words + RUN_FLAGS + ["--stop-time-hours", f"{minutes / 60:.6f}", "--validate-interval-updates",
                                str(validate_every), "--save-interval-updates", str(validate_every),
                                "--keep-interval-updates", "1"]


def device_flags():
    import torch

    return [] if torch.cuda.is_available() else ["--cpu"]


def train(config, args, run):
    """fairseq-train for --minutes; the log goes to RUN/train.log."""
    for stale in ("checkpoints", "tb"):
        subprocess.run(["rm", "-rf", str(run / stale)], check=True)
    run.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "fairseq-train"), str(args.data), "--user-dir",
               str(REPO / "node_transformer"), *run_flags(config, args.hparams, args.minutes, args.validate_every),
               "--save-dir", str(run / "checkpoints"), "--tensorboard-logdir", str(run / "tb"), *device_flags()]
    (run / "command.txt").write_text(" ".join(command) + "\n")
    from node_transformer.hub import record_data

    record_data(args.data, run)  # the run translates like one of scripts/train.sh's
    with open(run / "train.log", "w") as log:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"equal_time.py: training {config.stem} failed; see {run / 'train.log'}")


def translate(run, data):
    """Beam-5 test2016 through scripts/generate.sh: tokenized BLEU and fairseq's sentences/s."""
    env = dict(os.environ, DATA=str(data), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "generate.sh"), str(run), "--subsets", "test"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"equal_time.py: translating {run} failed:\n{proc.stderr[-3000:]}")
    (run / "gen" / "test.log").write_text(proc.stderr)  # fairseq-generate logs its speed there
    results = json.loads((run / "results.json").read_text())["test2016_flickr"]
    from node_transformer.training_log import translation_speeds

    speeds = translation_speeds(proc.stderr)
    return {"bleu": results["tokenized_bleu"], "sentences_per_second": speeds[0] if speeds else None}


def equal_update(results, validate_every):
    """The last regular validation (a multiple of --validate-every) that every run reached."""
    reached = [max((updates for _, updates, _ in r["curve"] if updates % validate_every == 0), default=0)
               for r in results.values()]
    return min(reached) if reached and min(reached) > 0 else None


def row(name, result, reference, at_update):
    from node_transformer.training_log import loss_at_update, time_to_reach

    curve = result["curve"]
    at_equal = loss_at_update(curve, at_update) if at_update else None
    best_s, best_updates, best_loss = min(curve, key=lambda point: point[2]) if curve else (None, None, None)
    reach = time_to_reach(reference["curve"], best_loss) if best_loss is not None else None
    nfe = ", ".join(f"{key[4:].replace('_', ' ')} {first:.0f}→{last:.0f}" for key, (first, last) in result["nfe"].items())
    speed = result["sentences_per_second"]
    return [name, result["updates"], f"{result['train_seconds'] / max(result['updates'], 1):.2f}", nfe or "-",
            f"{best_loss:.2f} (update {best_updates})" if best_loss is not None else "-",
            f"{at_equal:.2f}" if at_equal is not None else "-",
            f"{reach / best_s:.2f}" if reach is not None and best_s else "not reached",
            f"{result['bleu']:.1f}", f"{speed:.1f}" if speed else "-",
            f"{speed / reference['sentences_per_second']:.2f}" if speed and reference["sentences_per_second"] else "-"]


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import Table, publish

    from node_transformer.experiment_config import config_path
    from node_transformer.training_log import read_training

    configs = [config_path(name) for name in args.configs]
    for config in configs:
        if not config.is_file():
            raise SystemExit(f"equal_time.py: no config file '{config}'")
    results = {}
    for config in configs:  # strictly one after another: a shared CPU would make the budget meaningless
        run = args.work / config.stem
        started = time.time()
        print(f"training {config.stem} for {args.minutes:g} min", flush=True)
        train(config, args, run)
        results[config.stem] = {**read_training((run / "train.log").read_text()), **translate(run, args.data)}
        print(f"  done in {(time.time() - started) / 60:.1f} min", flush=True)
    reference_name = configs[0].stem
    reference = results[reference_name]
    at_update = equal_update(results, args.validate_every)
    table = Table(
        "equal_time", f"Equal time: {args.minutes:g} minutes of training each, Multi30k EN-DE, hyperparameters of "
                      f"{args.hparams.name}",
        ["config", "updates", "s/update", "NFE per solve (first→last logged)", "best valid loss",
         f"valid loss at update {at_update or '-'} (equal updates)", f"{reference_name} time to that loss / this run's", "BLEU test2016 (tok, beam 5)", "sentences/s",
         f"x {reference_name} speed"],
        [row(name, result, reference, at_update) for name, result in results.items()],
        note=f"Command: python benchmarks/equal_time.py --minutes {args.minutes:g} {' '.join(args.configs)}. "
             f"Valid loss is fairseq's (label-smoothed, base 2), validated every {args.validate_every} updates; "
             f"times count from the start of training, validation included. A time ratio below 1 means "
             f"{reference_name} reached that run's best loss sooner.")
    publish(table, args.out)
    (args.out / "equal_time.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
