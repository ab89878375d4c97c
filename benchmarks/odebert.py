"""The ODE BERT against the classic tiny RoBERTa, side by side: each masked-LM config pretrained for the same
wall time on the Multi30k corpus, strictly one after another, then each fine-tuned from its best checkpoint on
the translation-or-not pairs for the same number of updates; one table and the figures.

    python benchmarks/odebert.py [--minutes 15] [--finetune-updates 600] [CONFIG ...]
    python benchmarks/odebert.py --report        # the table and figures again, from the records alone

CONFIGs are masked-LM configs (configs/mlm_NAME.args; default: the NODE chain and layer functions and the
classic 1- and 4-layer RoBERTa); each fine-tunes with its twin configs/pairs_NAME.args. The data comes from
python -m node_experiments.mlm_data (--mlm-data, --pairs-data). Defined on node_experiments.runner: a time
budget for pretraining, an update cap for fine-tuning. The table: masked-LM validation loss at equal updates
and at the end (equal time), NFE per solve (first → last logged), seconds per update, and the fine-tuned
validation accuracy (node_experiments.odebert_report). Each run leaves a compact record (its curves, NFE and
clean seconds per update) in OUT/odebert/records/ and the settings go to OUT/odebert.json, so the table, the
figures (OUT/odebert/*.png) and the notebook's section rebuild on a fresh clone without the run directories.
"""
import argparse
import logging
import sys
from pathlib import Path

from node_experiments.experiment_config import read_flag_groups
from node_experiments.odebert_report import FIGURES, RECORDS, Settings, read_records, table
from node_experiments.report import publish
from node_experiments.run_dir import REPO, RunDir, check_data
from node_experiments.runner import Experiment, Runner, RunnerError, Schedule, TimeBudget, check_experiments

DEFAULT_CONFIGS = ["mlm_node_tiny", "mlm_node_layer_tiny", "mlm_roberta_1layer", "mlm_roberta_tiny"]
PRETRAINED = "checkpoint_best.pt"  # what each fine-tuning starts from: its equal-time pretraining's best


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS, help="masked-LM configs (configs/mlm_*.args)")
    parser.add_argument("--minutes", type=float, default=15.0, help="pretraining wall time of each (default 15)")
    parser.add_argument("--validate-every", type=int, default=100, metavar="UPDATES")
    parser.add_argument("--finetune-updates", type=int, default=600, metavar="UPDATES",
                        help="fine-tuning updates of each (default 600)")
    parser.add_argument("--mlm-data", type=Path, default=REPO / "data" / "mlm_en_de" / "bin")
    parser.add_argument("--pairs-data", type=Path, default=REPO / "data" / "pairs_en_de" / "bin")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "odebert")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: rebuild the table and figures from OUT's records")
    args = parser.parse_args(argv)
    if args.report:
        return args
    if args.minutes <= 0 or args.validate_every < 1 or args.finetune_updates < 1:
        parser.error("--minutes, --validate-every and --finetune-updates must be positive")
    twins = [f"pairs_{name[len('mlm_'):]}" for name in args.configs]
    for problem in (check_experiments(args.configs), check_experiments(twins), check_data(args.mlm_data),
                    check_data(args.pairs_data)):
        if problem:
            parser.error(f"{problem} (python -m node_experiments.mlm_data makes the data)")
    args.twins = twins
    return args


def pretraining(args):
    runner = Runner(TimeBudget(args.minutes, args.validate_every), args.work / "pretrain", args.mlm_data, ())
    return runner, [Experiment.from_config(name) for name in args.configs]


def fine_tuning(args):
    """Each twin from its pretrained run's best checkpoint, --finetune-updates updates, validated at the end."""
    schedule_file = args.work / "finetune_schedule.args"
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    schedule_file.write_text("--validate-interval-updates 0\n--save-interval-updates 0\n")
    experiments = []
    for name, twin in zip(args.configs, args.twins):
        groups = read_flag_groups(REPO / "configs" / f"{twin}.args")
        groups["--restore-file"] = [str(RunDir(args.work / "pretrain" / name).checkpoint(PRETRAINED))]
        experiments.append(Experiment(twin, groups, args.finetune_updates))
    return Runner(Schedule(schedule_file, average_last=1), args.work / "finetune", args.pairs_data, ()), experiments


def run_and_record(runner, experiments, records_dir):
    """Train each experiment (or keep its finished result) and write its record (train and valid curves,
    NFE, clean seconds per update) to RECORDS_DIR."""
    for experiment, result in zip(experiments, runner.run_all(experiments)):
        runner.record(experiment, result, records_dir)


def report(out):
    """OUT/odebert.md and the figures in OUT/odebert/, from OUT/odebert.json and the records alone."""
    from node_experiments.plot import plot_scalars
    from node_experiments.study_record import as_scalars

    settings = Settings.read(out)
    records = read_records(out)
    publish(table(settings, records), out)
    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq leaves the root logger chatty
    pretrained = {name: as_scalars(records[name]) for name in settings.configs if name in records}
    for path in plot_scalars(pretrained, out / FIGURES, ("png",)):
        print(path)


def main(argv=None):
    args = parse_args(argv)
    if not args.report:
        try:
            run_and_record(*pretraining(args), args.out / RECORDS)
            run_and_record(*fine_tuning(args), args.out / RECORDS)
        except RunnerError as error:
            raise SystemExit(f"odebert.py: {error}")
        Settings(args.minutes, args.validate_every, args.finetune_updates, args.configs, args.twins).write(args.out)
    try:
        report(args.out)
    except FileNotFoundError as error:
        raise SystemExit(f"odebert.py --report: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
