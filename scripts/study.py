"""The study runner: every experiment trained under one budget, strictly one after another, then translated;
one results table (Markdown and JSON) and the figures.

    scripts/study.sh [--converged | --minutes 10] [--all-test-sets] [EXPERIMENT ...]
    scripts/study.sh --progress     # where each converged run stands, while the runner trains
    scripts/study.sh --carry        # the runner stopped, its unfinished runs copied into the repository

An EXPERIMENT is a config name (configs/NAME.args) or path; by default, under --converged, the plan
(CONVERGED_PLAN: the main comparisons to their plateau, the single-factor variants and ablations to 3000
updates, the dearest to 2000), and under --minutes every experiment of the study, its ablations, and the
fast and regularised configs (see --list). Two budgets:
- --converged (the default): the study's one schedule, configs/base/converged_schedule.args, appended to
  each config's flags so that a config contributes only its architecture and --node-* flags. A run stops
  on its plateau (fairseq's --patience) or its update cap, never on wall time; interrupted, it resumes
  from its checkpoint_last.pt (fairseq's exact resume) when the runner is started again. Its final model
  averages its last interval checkpoints; all three test sets are translated from it, each in up to 8
  shards of its batches kept as each finishes (the same translations as one call). Run directories
  live outside the checkout (--work, default $NODE_TRANSFORMER_RUNS/converged, NODE_TRANSFORMER_RUNS
  defaulting to ~/node-transformer-runs), so a fresh clone loses no training. On a new machine, a run
  that OUT/records/NAME.json records as finished with the same flags is kept, and an unfinished one
  resumes from its copy in OUT/carry/NAME (written by --carry, to be committed; node_experiments/carry.py).
  SIGUSR1 to the runner's process (its id is in WORK/.study.lock) stops it where nothing is lost: the run
  training saves its checkpoint_last.pt after its current update and the runner exits (a translation
  stops at once, the test sets it finished kept; a yardstick or record under way finishes first); --carry
  sends it and waits.
- --minutes M: early training, each config's own flags for M minutes of wall time (fairseq's
  --stop-time-hours; the config's epoch and update limits are lifted), validating every --validate-every
  updates. An experiment interrupted while training starts again from scratch (a time budget cannot be
  resumed honestly).
An experiment interrupted while translating is only translated, from the first test set it had not finished. Translation uses beam 5 (under --minutes
test2016 alone, all three test sets with --all-test-sets), each translation at most 1.2 x its source + 10
tokens long (node_experiments/length_bound.py).

An experiment whose result is in WORK/NAME/study_result.json for the same budget and flags is kept: re-run
the same command to go on where it stopped. A kept experiment translated with another length bound is
translated again from its final model, without training again. One runner per WORK directory at a time
(a lock file), and it runs one training at a time: on a shared machine a wall-time budget means nothing
otherwise.
Under --minutes it writes OUT/study.md, OUT/study.json and OUT/study/*.png (node_experiments.plot). Under
--converged it writes each experiment's compact record (OUT/records/NAME.json: its curves against updates,
clean seconds per update, where and why it stopped, its final model's scores), and OUT/study.md and
OUT/figures/*.png from those records alone; --report rebuilds the two from the records, with no run
directories and no data (a fresh clone).
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("NODE_TRANSFORMER_RUNS", Path.home() / "node-transformer-runs"))
SCHEDULE = REPO / "configs" / "base" / "converged_schedule.args"
GROUPS = {
    "references": ["transformer_1layer", "transformer_6layer", "transformer_tiny"],
    "study": ["node_full_tol1e-2", "node_full_tol1e-3", "node_full_aug1", "node_decoder_aug1",
              "node_separated_aug1", "node_separated_aug1_timedep", "node_separated_aug1_weightdecay"],
    "ablations": ["node_full_tol1e-2_2019bug", "node_separated_aug1_2019bug"],
    "fast": ["node_fast_rk4", "node_fast_separated_midpoint", "node_fast_separated_euler"],
    "regularised": ["demo", "demo_kinetic", "demo_jacobian", "demo_steer"],
}
DEFAULT_EXPERIMENTS = [name for names in GROUPS.values() for name in names]  # --minutes' default
# --converged's default: (update cap, experiments), None for the schedule's own cap, in the order they train.
# The plan of issue 20: the main comparisons to their plateau; the ablations and single-factor variants
# against their base run at equal updates; the dearest variants as far as a cap allows (marked "update cap":
# not converged). Cheapest first, so that the conclusions that need only the classic, fixed-grid and
# separated runs are decided before the adaptive encoder + decoder runs (about 10 s an update here) train.
# No `demo`: on the one schedule its flags are those of study_conclusions.DEMO_RUN (a test checks it).
CONVERGED_PLAN = [
    (None, ["transformer_tiny", "transformer_1layer", "node_layer_euler_t2", "node_fast_separated_euler",
            "node_separated_aug1"]),
    (3000, ["transformer_1layer_prenorm_dec", "node_separated_aug1_2019bug", "node_separated_aug1_timedep",
            "node_separated_aug1_weightdecay", "demo_kinetic", "node_decoder_aug1"]),
    (None, ["node_full_tol1e-2"]),
    # added once node_full_tol1e-2 had failed on the schedule: is that failure its optimiser's?
    (3000, ["node_full_tol1e-2_clip"]),
    # 3000, as the other capped runs: its final model averages its last 10 interval checkpoints, which at a cap of
    # 2000 spanned updates 200-2000, the whole warmup (valid loss 4.707 at 2000, yet 18.5 BLEU from the average);
    # at 3000 they span 1200-3000 as the other capped runs' do. Raised after it had finished at 2000: it resumes.
    (3000, ["transformer_6layer"]),
    # It was its gradient's: backprop through the solve at tolerance 1e-2 stopped being the ODE's gradient as
    # the model learnt, the adjoint stayed it longer (benchmarks/results/gradient_fidelity.md). The full NODE's
    # comparisons train with the adjoint, the bounded runs first.
    # Capped at 1000, not 2000: the base's encoder NFE rose from 20 to 264 per solve by update 800 (about 14 s an
    # update here, and more at 1e-3), so 2000 updates each would have cost more than the rest of the study.
    (1000, ["node_full_aug1_adjoint", "node_full_tol1e-3_adjoint"]),
    (3000, ["node_full_tol1e-2_adjoint_2019bug"]),
    # The base last: past update 800 its encoder is stiff, its gradient no longer the ODE's
    # (benchmarks/results/gradient_fidelity_256_tokens), and by update 950 its training loss rose 6.86 -> 8.23 at
    # 30+ s an update, with --patience 5 stopping it at update 1800 at the earliest.
    (3000, ["node_full_tol1e-2_adjoint"]),
]
CONVERGED_OUT = REPO / "benchmarks" / "results" / "converged"  # --converged's default OUT; the README copies its table
RECORDS = "records"  # OUT/records/NAME.json: a converged run's StudyRecord, all that --report reads
CARRY = "carry"  # OUT/carry/NAME/: an unfinished converged run carried to the next machine (node_experiments.carry)
FIGURES = "figures"  # OUT/figures/*.png under --converged


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/study.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                        help="config names or paths (default: every experiment of --list)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--converged", action="store_true",
                        help="the study's one schedule to each run's plateau or update cap, resumable (the default)")
    budget.add_argument("--minutes", type=float, default=None, help="early training: M minutes of wall time each")
    parser.add_argument("--all-test-sets", action="store_true",
                        help="under --minutes, translate test2016, test2017 and mscoco2017 (--converged always does)")
    parser.add_argument("--validate-every", type=int, default=100, metavar="UPDATES",
                        help="validation interval under --minutes (default 100)")
    parser.add_argument("--data", type=Path, default=None, help="binarised Multi30k (default $DATA or data/multi30k_en_de/bin)")
    parser.add_argument("--work", type=Path, default=None,
                        help="run directories (default $NODE_TRANSFORMER_RUNS/converged or .../study, "
                             "NODE_TRANSFORMER_RUNS defaulting to ~/node-transformer-runs)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the table, records and figures go (default benchmarks/results/converged "
                             "or benchmarks/results)")
    parser.add_argument("--schedule", type=Path, default=SCHEDULE,
                        help="the --converged schedule's flags (default configs/base/converged_schedule.args)")
    parser.add_argument("--max-update", type=int, default=None, metavar="UPDATES",
                        help="--converged: stop each run at UPDATES updates instead of the schedule's cap (a run "
                             "cut there is marked 'update cap'; raised later, the run resumes and goes on)")
    parser.add_argument("--average-last", type=int, default=10, metavar="N",
                        help="--converged: the final model averages the N newest interval checkpoints (default 10)")
    parser.add_argument("--report", action="store_true",
                        help="--converged: rebuild OUT/study.md and OUT/figures from OUT/records alone (no training)")
    parser.add_argument("--progress", action="store_true",
                        help="--converged: print where each run of the plan (or each named, with its planned cap) "
                             "stands in WORK, read from its run directory (nothing is trained or changed), and exit")
    parser.add_argument("--carry", action="store_true",
                        help="--converged: copy what each unfinished run of the plan (or each named) needs to resume "
                             "into OUT/carry/NAME, to be committed, drop the copies of runs that have finished, and "
                             "exit; a runner on a machine without the run directory resumes from there. A runner "
                             "training in WORK is stopped first, its run saved after its current update")
    parser.add_argument("--list", action="store_true", help="print the default experiments by group and exit")
    args = parser.parse_args(argv)
    if args.list:
        for group, names in GROUPS.items():
            print(f"{group}: {' '.join(names)}")
        for cap, names in CONVERGED_PLAN:
            print(f"--converged, {f'--max-update {cap}' if cap else 'to the plateau'}: {' '.join(names)}")
        parser.exit(0)
    if args.minutes is not None and not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes:g}")
    args.converged = args.minutes is None
    args.work = args.work or RUNS / ("converged" if args.converged else "study")
    args.out = args.out or (CONVERGED_OUT if args.converged else REPO / "benchmarks" / "results")
    if args.report:
        if not args.converged:
            parser.error("--report rebuilds the converged study's table; it is not allowed with --minutes")
        records = args.out / RECORDS
        args.experiments = args.experiments or sorted(path.stem for path in records.glob("*.json"))
        missing = [name for name in args.experiments if not (records / f"{name}.json").is_file()]
        if missing or not args.experiments:
            parser.error(f"--report: no record {', '.join(missing) or '*'}.json in {records}")
        return args
    if args.validate_every < 1:
        parser.error("--validate-every must be a positive number of updates")
    if args.max_update is not None and (not args.converged or args.max_update < 1):
        parser.error("--max-update must be a positive number of updates, under --converged")
    from node_experiments.run_dir import check_data, default_data
    from node_experiments.runner import Experiment, check_experiments

    caps = {}  # experiment -> its update cap, where the plan gives one
    watching = args.progress or args.carry  # reads the run directories: no data needed
    # --carry takes the caps training takes, so that it finds the runs training left
    if args.converged and args.max_update is None and (args.progress or not args.experiments):
        # the plan's runs as planned; one named for training trains to its plateau (the docs' example)
        args.experiments = args.experiments or [name for _, names in CONVERGED_PLAN for name in names]
        caps = {name: cap for cap, names in CONVERGED_PLAN for name in names if cap}
    args.experiments = args.experiments or DEFAULT_EXPERIMENTS
    problem = check_experiments(args.experiments)
    if problem:
        parser.error(f"{problem} (--list shows the study's experiments)")
    args.data = args.data or default_data()
    args.runs = [Experiment.from_config(name, caps.get(name, args.max_update)) for name in args.experiments]
    if watching:
        if args.progress and args.carry:
            parser.error("--progress and --carry: one at a time")
        if not args.converged:
            parser.error(f"{'--progress' if args.progress else '--carry'} is about the converged study's runs; "
                         "it is not allowed with --minutes")
        return args
    if check_data(args.data):
        parser.error(f"--data: {check_data(args.data)}")
    return args


def runner_of(args, subsets):
    from node_experiments.runner import CONVERGED_TRANSLATION_SHARDS, Runner, Schedule, TimeBudget

    if not args.converged:
        return Runner(TimeBudget(args.minutes, args.validate_every), args.work, args.data, subsets)
    return Runner(Schedule(args.schedule, args.average_last), args.work, args.data, subsets,
                  records=args.out / RECORDS, carry=args.out / CARRY, yardstick=True,
                  translation_shards=CONVERGED_TRANSLATION_SHARDS)


def _nfe_cell(nfe, direction):
    cells = [f"{side} {nfe[key][0]:.0f}→{nfe[key][1]:.0f}" for side in ("enc", "dec")
             if (key := f"nfe_{side}_{direction}") in nfe]
    return ", ".join(cells) or "-"


def table_rows(results, subsets, at_update):
    from node_experiments.run_dir import SUBSETS
    from node_experiments.training_log import loss_at_update

    rows = []
    for r in results:
        scores = [r.translation.get(SUBSETS[s]) for s in subsets]
        best = f"{r.best_valid_loss:.2f} (update {r.best_at_update}, {r.best_at_minutes:.1f} min)" \
            if r.best_valid_loss is not None else "-"
        bleu = " / ".join(f"{score['tokenized_bleu']:.1f}" if score else "-" for score in scores)
        sacre = " / ".join(f"{score['sacrebleu']:.1f}" if score else "-" for score in scores)
        speed = scores[0].get("sentences_per_second") if scores[0] else None
        name = r.experiment + (" (stopped)" if r.stopped else "")
        equal = loss_at_update(r.curve, at_update) if at_update else None
        rows.append([name, r.updates, f"{r.seconds_per_update:.2f}", best,
                     f"{equal:.2f}" if equal is not None else "-",
                     _nfe_cell(r.nfe, "fwd"), _nfe_cell(r.nfe, "bwd"), r.budget_skips, bleu, sacre,
                     f"{speed:.1f}" if speed else "-"])
    return rows


def recorded(out):
    """Every record in OUT/records, in the plan's order and then by name: the report covers the whole study,
    not only the experiments of the last call."""
    from node_experiments.study_record import read_all

    records = read_all(out / RECORDS)
    order = [name for _, names in CONVERGED_PLAN for name in names]
    return sorted(records.values(), key=lambda r: (order.index(r.experiment) if r.experiment in order else len(order),
                                                   r.experiment))


def write_converged_report(records, out):
    """OUT/study.md, OUT/conclusions.md and OUT/figures/[SECTION/]*.png from RECORDS alone."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq leaves the root logger chatty
    from node_experiments import study_conclusions
    from node_experiments.report import Table, publish
    from node_experiments.plot import plot_scalars
    from node_experiments.study_record import as_scalars, stop_reasons, table_columns_and_rows

    table = Table(
        "study", "The study at convergence: one schedule, each run to its plateau or update cap, Multi30k EN-DE",
        *table_columns_and_rows(records),
        note="Command: scripts/study.sh --converged (the plan of scripts/study.sh --list; the records of every "
             f"call); rebuilt from {RECORDS}/ with scripts/study.sh --report. Schedule: "
             "configs/base/converged_schedule.args, capped at 3000 or 2000 updates where the plan says. Valid "
             "loss is fairseq's (label-smoothed cross-entropy, base 2); status says why a run stopped (plateau: "
             "fairseq's --patience; update cap: --max-update). s/update is the median over the logged "
             "intervals of fairseq's own updates per second, so the stretches a run spent suspended or beside "
             "other work drop out. NFE are train_inner means over 50 updates. BLEU with beam 5 from the "
             "average of the last interval checkpoints, translations at most 1.2 x source + 10 tokens long."
             + (f"\n\n{reasons}" if (reasons := stop_reasons(records)) else ""),
        machine="; ".join(sorted({r.machine for r in records if r.machine})) or "not recorded")
    publish(table, out)
    by_name = {r.experiment: r for r in records}
    figures = plot_scalars({name: as_scalars(r) for name, r in by_name.items()}, out / FIGURES, ("png",))
    for section, names in study_conclusions.SECTIONS.items():
        present = [name for name in names if name in by_name]
        folder = out / FIGURES / section
        drawn = plot_scalars({name: as_scalars(by_name[name]) for name in present}, folder, ("png",)) \
            if present else []
        # Drawn over in place, then what was not redrawn goes (a section's runs may have changed since): the
        # folder is never without its figures while a runner rebuilds the report beside a commit.
        for stale in set(folder.glob("*")) - set(drawn):
            stale.unlink()
        if folder.is_dir() and not drawn:
            folder.rmdir()
        figures += drawn
    for path in figures:
        print(path)
    checked = study_conclusions.check(by_name)
    conclusions = study_conclusions.markdown(checked, FIGURES)
    (out / "conclusions.md").write_text(
        "### The conclusions, checked against the converged study's records\n\n" + conclusions +
        "\nRules: node_experiments/study_conclusions.py. A run that ended before the update a row compares at, on "
        "its plateau or by its solves' step budget (it cannot train on), stands at its best validation loss. "
        "Rebuilt with scripts/study.sh --report.\n")
    if out.resolve() == CONVERGED_OUT.resolve():  # this checkout's results
        (REPO / "README.md").write_text(readme_with_conclusions(checked))
    print(conclusions)


def readme_with_conclusions(checked) -> str:
    """README.md's text with its conclusions table (study_conclusions.in_readme) that of CHECKED, its figures
    linked under CONVERGED_OUT."""
    from node_experiments import study_conclusions

    return study_conclusions.in_readme((REPO / "README.md").read_text(), checked,
                                       f"{CONVERGED_OUT.relative_to(REPO)}/{FIGURES}")


def write_results(results, args, subsets):
    """The --minutes study's OUT/study.md and OUT/study.json."""
    from dataclasses import asdict

    from node_experiments.report import Table, publish
    from node_experiments.run_dir import SUBSETS
    from node_experiments.runner import common_update

    budget = f"{args.minutes:g} minutes of training each"
    test_names = " / ".join(SUBSETS[s] for s in subsets)
    command = f"scripts/study.sh --minutes {args.minutes:g}" + \
        (" --all-test-sets" if args.all_test_sets else "") + " " + " ".join(args.experiments)
    stopped = "".join(f" {r.experiment} stopped: {r.stopped}." for r in results if r.stopped)
    at_update = common_update(results, args.validate_every)
    table = Table(
        "study", f"The study: {budget}, Multi30k EN-DE, strictly one after another",
        ["experiment", "updates", "s/update", "best valid loss (when)",
         f"valid loss at update {at_update}" if at_update else "valid loss at equal updates",
         "fwd NFE per solve (first→last logged)", "bwd NFE per solve", "budget skips", f"BLEU tok ({test_names})", "sacreBLEU", "sentences/s (test2016)"],
        table_rows(results, subsets, at_update),
        note=f"Command: {command}. Valid loss is fairseq's (label-smoothed, base 2); NFE are train_inner means "
             f"over 50 updates; BLEU with beam 5 from the best checkpoint, translations at most 1.2 x source + 10 "
             f"tokens long." +
             (f" Update {at_update} is the last validation every run reached: the loss there compares "
              "learning per update, the best loss learning per minute." if at_update else "") +
             " A budget this short is early training, not convergence: compare the runs with each other, not "
             "with converged losses." + stopped)
    publish(table, args.out)
    (args.out / "study.json").write_text(json.dumps({"command": command, "equal_updates": at_update, "results": [asdict(r) for r in results]}, indent=1) + "\n")


def plot(args):
    """The figures of every run that logged anything (a run stopped at its first batch has no curves)."""
    import logging

    from node_experiments.plot import PlotError, load_run, plot_runs

    logging.getLogger().setLevel(logging.WARNING)
    runs = []
    for experiment in args.runs:
        try:
            load_run(args.work / experiment.name)
            runs.append(args.work / experiment.name)
        except PlotError as error:
            print(f"study: {experiment.name} is left out of the figures: {error}", file=sys.stderr)
    if runs:
        for path in plot_runs(runs, args.out / "study", ("png",)):
            print(path)


def carry(runner, args) -> int:
    """--carry: each run's state copied to OUT/carry, or its copy dropped once finished."""
    from node_experiments.carry import CarryError
    from node_experiments.study_progress import runner_active, stop_runner

    if runner_active(args.work):
        pid = stop_runner(args.work)
        if pid is None:
            print(f"study: a runner is training in {args.work} and its lock holds no process id: stop it first "
                  "(right after a checkpoint), so that no checkpoint is carried half-written", file=sys.stderr)
            return 2
        print(f"study: asked the runner (process {pid}) to stop: a run training saves its checkpoint_last.pt after "
              "its current update; a translation stops at once, its finished test sets kept; a yardstick or record "
              "under way finishes first. Waiting...", flush=True)
        while runner_active(args.work):
            time.sleep(2)
    for experiment in args.runs:
        try:
            print(f"{experiment.name}: {runner.carry_out(experiment)}", flush=True)
        except CarryError as error:
            print(f"study: {experiment.name}: {error}", file=sys.stderr)
            return 1
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        write_converged_report([r for r in recorded(args.out) if r.experiment in set(args.experiments)], args.out)
        return 0
    from node_experiments.run_dir import SUBSETS  # imported here: --help and --list work before the install

    subsets = list(SUBSETS) if args.all_test_sets or args.converged else ["test"]
    runner = runner_of(args, subsets)
    if args.progress:
        from node_experiments import study_progress

        rows = [study_progress.progress(runner, run) for run in args.runs]
        print(study_progress.markdown(rows, args.work, study_progress.runner_active(args.work)), end="")
        return 0
    if args.carry:
        return carry(runner, args)
    from node_experiments.runner import STOP_SIGNAL, RunnerError, RunnerStopped

    def record_as_it_ends(experiment, result):  # a study of days leaves its results on the way
        runner.record(experiment, result, args.out / RECORDS)
        write_converged_report(recorded(args.out), args.out)

    if args.converged:  # a resumable run can stop at any update; a time budget's would start again
        signal.signal(STOP_SIGNAL, lambda signum, frame: runner.request_stop())
    try:
        results = runner.run_all(args.runs, record_as_it_ends if args.converged else None)
    except RunnerStopped as stopped:
        print(f"study: {stopped}; started again, the runner goes on from there", flush=True)
        return 0
    except RunnerError as error:
        print(f"study: {error}", file=sys.stderr)
        return 2
    if not args.converged:
        write_results(results, args, subsets)
        plot(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
