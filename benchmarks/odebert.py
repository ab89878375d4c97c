"""The ODE BERT against the classic tiny RoBERTa, side by side: each masked-LM config pretrained for the same
wall time on the Multi30k corpus, strictly one after another, then each fine-tuned from its best checkpoint on
the translation-or-not pairs for the same number of updates; one table and the figures.

    python benchmarks/odebert.py [--minutes 20] [--finetune-updates 600] [CONFIG ...]

CONFIGs are masked-LM configs (configs/mlm_NAME.args; default: the NODE chain and layer functions and the
classic 1- and 4-layer RoBERTa); each fine-tunes with its twin configs/pairs_NAME.args. The data comes from
python -m node_experiments.mlm_data (--mlm-data, --pairs-data). Defined on node_experiments.runner: a time
budget for pretraining, an update cap for fine-tuning. The table: masked-LM validation loss at equal updates
and at the end (equal time), NFE per solve (first → last logged), seconds per update, and the fine-tuned
validation accuracy. The figures (node_experiments.plot) go to OUT/odebert/.
"""
import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from node_experiments.experiment_config import read_flag_groups
from node_experiments.report import Table, publish
from node_experiments.run_dir import REPO, RunDir, check_data
from node_experiments.runner import (Experiment, Runner, RunnerError, Schedule, TimeBudget, check_experiments,
                                     common_update)
from node_experiments.training_log import loss_at_update

DEFAULT_CONFIGS = ["mlm_node_tiny", "mlm_node_layer_tiny", "mlm_roberta_1layer", "mlm_roberta_tiny"]
PRETRAINED = "checkpoint_best.pt"  # what each fine-tuning starts from: its equal-time pretraining's best


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS, help="masked-LM configs (configs/mlm_*.args)")
    parser.add_argument("--minutes", type=float, default=20.0, help="pretraining wall time of each (default 20)")
    parser.add_argument("--validate-every", type=int, default=100, metavar="UPDATES")
    parser.add_argument("--finetune-updates", type=int, default=600, metavar="UPDATES",
                        help="fine-tuning updates of each (default 600)")
    parser.add_argument("--mlm-data", type=Path, default=REPO / "data" / "mlm_en_de" / "bin")
    parser.add_argument("--pairs-data", type=Path, default=REPO / "data" / "pairs_en_de" / "bin")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "odebert")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.validate_every < 1 or args.finetune_updates < 1:
        parser.error("--minutes, --validate-every and --finetune-updates must be positive")
    twins = [f"pairs_{name[len('mlm_'):]}" for name in args.configs]
    for problem in (check_experiments(args.configs), check_experiments(twins), check_data(args.mlm_data),
                    check_data(args.pairs_data)):
        if problem:
            parser.error(f"{problem} (python -m node_experiments.mlm_data makes the data)")
    args.twins = twins
    return args


def pretrain(args):
    runner = Runner(TimeBudget(args.minutes, args.validate_every), args.work / "pretrain", args.mlm_data, ())
    return runner.run_all([Experiment.from_config(name) for name in args.configs])


def fine_tune(args, schedule):
    """Each twin from its pretrained run's last checkpoint, --finetune-updates updates, validated at the end."""
    experiments = []
    for name, twin in zip(args.configs, args.twins):
        groups = read_flag_groups(REPO / "configs" / f"{twin}.args")
        groups["--restore-file"] = [str(RunDir(args.work / "pretrain" / name).checkpoint(PRETRAINED))]
        experiments.append(Experiment(twin, groups, args.finetune_updates))
    runner = Runner(schedule, args.work / "finetune", args.pairs_data, ())
    return runner.run_all(experiments)


def accuracy(run: RunDir):
    values = [row["accuracy"] for row in run.training().valid if "accuracy" in row]
    return values[-1] if values else None


def main(argv=None):
    args = parse_args(argv)
    schedule_file = args.work / "finetune_schedule.args"
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    schedule_file.write_text("--validate-interval-updates 0\n--save-interval-updates 0\n")
    try:
        pretrained = pretrain(args)
        tuned = fine_tune(args, Schedule(schedule_file, average_last=1))
    except RunnerError as error:
        raise SystemExit(f"odebert.py: {error}")
    at_update = common_update(pretrained, args.validate_every)
    rows = []
    for result, twin in zip(pretrained, tuned):
        nfe = ", ".join(f"{key[4:].replace('_', ' ')} {first:.0f}→{last:.0f}" for key, (first, last) in result.nfe.items())
        equal = loss_at_update(result.curve, at_update) if at_update else None
        last = result.curve[-1][2] if result.curve else None
        score = accuracy(RunDir(args.work / "finetune" / twin.experiment))
        rows.append([result.experiment + (" (stopped)" if result.stopped else ""), result.updates,
                     f"{result.seconds_per_update:.2f}", f"{equal:.3f}" if equal is not None else "-",
                     f"{last:.3f}" if last is not None else "-", nfe or "-", twin.updates,
                     f"{score:.1f}" if score is not None else "-"])
    table = Table(
        "odebert", f"The ODE BERT: {args.minutes:g} minutes of masked-LM pretraining each, then "
                   f"{args.finetune_updates} updates of fine-tuning, Multi30k EN+DE",
        ["config", "pretraining updates", "s/update", f"MLM valid loss at update {at_update or '-'} (equal updates)",
         "MLM valid loss at the end (equal time)", "NFE per solve (first→last logged)", "fine-tuning updates",
         "pairs valid accuracy (%)"], rows,
        note=f"Command: python benchmarks/odebert.py --minutes {args.minutes:g} --finetune-updates "
             f"{args.finetune_updates} {' '.join(args.configs)}. MLM loss is fairseq's masked_lm criterion (base 2), "
             f"validated every {args.validate_every} updates; NFE are train_inner means over 20 updates; accuracy "
             f"is fine-tuning's last validation (translation or not, half the pairs shuffled: chance is 50%).")
    publish(table, args.out)
    (args.out / "odebert.json").write_text(json.dumps({"pretraining": [asdict(r) for r in pretrained],
                                                       "fine_tuning": [asdict(r) for r in tuned]}, indent=1) + "\n")
    from node_experiments.plot import plot_runs

    logging.getLogger().setLevel(logging.WARNING)
    for path in plot_runs([args.work / "pretrain" / name for name in args.configs], args.out / "odebert", ("png",)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
