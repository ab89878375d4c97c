"""The study runner: every experiment trained under one budget, strictly one after another, then translated;
one results table (Markdown and JSON) and the figures.

    scripts/study.sh [--converged | --minutes 10] [--all-test-sets] [EXPERIMENT ...]

An EXPERIMENT is a config name (configs/NAME.args) or path; by default, under --converged, the plan
(CONVERGED_PLAN: the main comparisons to their plateau, the single-factor variants and ablations to 3000
updates, the dearest to 2000), and under --minutes every experiment of the study, its ablations, and the
fast and regularised configs (see --list). Two budgets:
- --converged (the default): the study's one schedule, configs/base/converged_schedule.args, appended to
  each config's flags so that a config contributes only its architecture and --node-* flags. A run stops
  on its plateau (fairseq's --patience) or its update cap, never on wall time; interrupted, it resumes
  from its checkpoint_last.pt (fairseq's exact resume) when the runner is started again. Its final model
  averages its last interval checkpoints; all three test sets are translated from it. Run directories
  live outside the checkout (--work, default $NODE_TRANSFORMER_RUNS/converged, NODE_TRANSFORMER_RUNS
  defaulting to ~/node-transformer-runs), so a fresh clone loses no training.
- --minutes M: early training, each config's own flags for M minutes of wall time (fairseq's
  --stop-time-hours; the config's epoch and update limits are lifted), validating every --validate-every
  updates. An experiment interrupted while training starts again from scratch (a time budget cannot be
  resumed honestly).
An experiment interrupted while translating is only translated. Translation uses beam 5 (under --minutes
test2016 alone, all three test sets with --all-test-sets), each translation at most 1.2 x its source + 10
tokens long (node_transformer/length_bound.py).

An experiment whose result is in WORK/NAME/study_result.json for the same budget and flags is kept: re-run
the same command to go on where it stopped. A kept experiment translated with another length bound is
translated again from its final model, without training again. One runner per WORK directory at a time
(a lock file), and it runs one training at a time: on a shared machine a wall-time budget means nothing
otherwise.
Under --minutes it writes OUT/study.md, OUT/study.json and OUT/study/*.png (node_transformer.plot). Under
--converged it writes each experiment's compact record (OUT/records/NAME.json: its curves against updates,
clean seconds per update, where and why it stopped, its final model's scores), and OUT/study.md and
OUT/figures/*.png from those records alone; --report rebuilds the two from the records, with no run
directories and no data (a fresh clone).
"""
import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("NODE_TRANSFORMER_RUNS", Path.home() / "node-transformer-runs"))
SCHEDULE = REPO / "configs" / "base" / "converged_schedule.args"
AVERAGED = "checkpoint_averaged.pt"  # a converged run's final model: the average of its last checkpoints
GROUPS = {
    "references": ["transformer_1layer", "transformer_6layer", "transformer_tiny"],
    "study": ["node_full_tol1e-2", "node_full_tol1e-3", "node_full_aug1", "node_decoder_aug1",
              "node_separated_aug1", "node_separated_aug1_timedep", "node_separated_aug1_weightdecay"],
    "ablations": ["node_full_tol1e-2_2019bug", "node_separated_aug1_2019bug"],
    "fast": ["node_fast_rk4", "node_fast_separated_midpoint", "node_fast_separated_euler"],
    "regularised": ["demo", "demo_kinetic", "demo_jacobian", "demo_steer"],
}
DEFAULT_EXPERIMENTS = [name for names in GROUPS.values() for name in names]  # --minutes' default
# --converged's default: (update cap, experiments), None for the schedule's own cap. The plan of issue 20:
# the main comparisons to their plateau; the ablations and single-factor variants against their base run at
# equal updates; the dearest variants as far as a cap allows (marked "update cap": not converged).
CONVERGED_PLAN = [
    (None, ["transformer_tiny", "transformer_1layer", "node_layer_euler_t2", "node_separated_aug1",
            "node_fast_separated_euler", "node_full_tol1e-2"]),
    (3000, ["transformer_1layer_prenorm_dec", "node_separated_aug1_2019bug", "node_separated_aug1_timedep",
            "node_separated_aug1_weightdecay", "node_decoder_aug1", "demo", "demo_kinetic", "node_full_tol1e-2_2019bug"]),
    (2000, ["node_full_tol1e-3", "node_full_aug1", "transformer_6layer"]),
]
SUBSETS = {"test": "test2016_flickr", "test1": "test2017_flickr", "test2": "test2017_mscoco"}
RESULT_FILE = "study_result.json"
RECORDS = "records"  # OUT/records/NAME.json: a converged run's StudyRecord, all that --report reads
FIGURES = "figures"  # OUT/figures/*.png under --converged
STARTED_FILE = "study_started_as"  # the fingerprint a run was started with: only such a run is resumed
CAP_FLAG = "--max-update"
TRAINED_LINE = "fairseq_cli.train | done training in "
STOP_LINE = re.compile(r"\b\w*(?:Error|Stopped|Exception|error)\b: .*")


class StudyError(Exception):
    pass


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
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DATA", REPO / "data" / "multi30k_en_de" / "bin")))
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
    args.out = args.out or REPO / "benchmarks" / "results" / ("converged" if args.converged else "")
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
    from node_transformer.experiment_config import config_path

    args.caps = {}  # experiment -> its update cap, where the plan gives one
    if not args.experiments and args.converged and args.max_update is None:
        args.experiments = [name for _, names in CONVERGED_PLAN for name in names]
        args.caps = {name: cap for cap, names in CONVERGED_PLAN for name in names if cap}
    args.experiments = args.experiments or DEFAULT_EXPERIMENTS
    args.configs = [config_path(name) for name in args.experiments]
    missing = [str(path) for path in args.configs if not path.is_file()]
    if missing:
        parser.error(f"no config file {', '.join(missing)} (--list shows the study's experiments)")
    if len({path.stem for path in args.configs}) != len(args.configs):
        parser.error("an experiment is named twice")
    if not (args.data / "dict.en.txt").is_file():
        parser.error(f"--data {args.data}: no binarised Multi30k there (run scripts/prepare_multi30k.sh)")
    return args


def budget_of(args):
    return {"schedule": "converged", "average_last": args.average_last} if args.converged else {"minutes": args.minutes, "validate_every": args.validate_every}


def training_flags(config, args):
    """Under --converged, the config's flags with the schedule's replacing any the config sets; under a time
    budget, the config's flags and those that make time the only limit."""
    from node_transformer.experiment_config import flag_words, read_flag_groups, read_flags

    if args.converged:
        updates = args.caps.get(config.stem, args.max_update)
        cap = {CAP_FLAG: [str(updates)]} if updates else {}
        return flag_words({**read_flag_groups(config), **read_flag_groups(args.schedule), **cap})
    flags = read_flags(config) + ["--log-format", "simple", "--log-interval", "50"]
    every = str(args.validate_every)
    return flags + ["--max-epoch", "0", "--max-update", "0", "--stop-time-hours", f"{args.minutes / 60:.6f}",
                    "--validate-interval-updates", every, "--save-interval-updates", every,
                    "--keep-interval-updates", "1", "--no-epoch-checkpoints", "--no-last-checkpoints"]


def fingerprint(flags, budget, subsets):
    text = json.dumps({"flags": flags, "budget": budget, "subsets": subsets}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def update_cap(flags):
    """The --max-update of a run's flags (0: none)."""
    return int(flags[flags.index(CAP_FLAG) + 1]) if CAP_FLAG in flags else 0


def run_key(flags, args, subsets):
    """A run's fingerprint. Under --converged it leaves the update cap out: a run given a higher cap goes on
    from where it stopped (fairseq's resume) instead of starting again."""
    if args.converged and CAP_FLAG in flags:
        at = flags.index(CAP_FLAG)
        flags = flags[:at] + flags[at + 2:]
    return fingerprint(flags, budget_of(args), subsets)


def plateaued(run):
    """Whether RUN's training stopped on its plateau (fairseq's --patience): no higher cap extends it."""
    from node_transformer.study_record import EARLY_STOP_LINE
    from node_transformer.training_log import last_session

    log = run / "train.log"
    return log.is_file() and EARLY_STOP_LINE in last_session(log.read_text())


def finished(run, key, cap):
    """RUN's result if it was trained and translated as KEY up to CAP updates (or to its plateau)."""
    path = run / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("fingerprint") != key:
        return None
    return result if result.get("max_update", cap) == cap or plateaued(run) else None


def started_as(run, key):
    """Whether RUN was started with the fingerprint KEY."""
    path = run / STARTED_FILE
    return path.is_file() and path.read_text() == key


def best_checkpoint(run):
    return run / "checkpoints" / "checkpoint_best.pt"


def trained(run, key, cap):
    """Whether RUN finished training as KEY (to its plateau, or CAP updates) and was interrupted after it,
    while translating."""
    from node_transformer.training_log import last_session, read_training

    log = run / "train.log"
    if not (started_as(run, key) and log.is_file() and TRAINED_LINE in last_session(log.read_text())):
        return False
    return plateaued(run) or not cap or read_training(log.read_text())["updates"] == cap


def beyond_cap(run, cap):
    """Whether RUN trained past CAP updates (a cap lowered since): it starts again, as another experiment."""
    from node_transformer.training_log import read_training

    log = run / "train.log"
    try:
        return bool(cap) and log.is_file() and read_training(log.read_text())["updates"] > cap
    except ValueError:  # never trained
        return False


def device_flags():
    import torch

    return [] if torch.cuda.is_available() else ["--cpu"]


def train(run, flags, args, key):
    """fairseq-train into RUN (log RUN/train.log); returns whether it exited cleanly. Under --minutes it
    starts from scratch; under --converged it resumes (fairseq's checkpoint_last.pt) a run that was started
    with the same fingerprint and has not trained past the cap, and starts afresh otherwise."""
    from node_transformer.hub import record_data

    resumable = args.converged and started_as(run, key) and not beyond_cap(run, update_cap(flags))
    if run.exists() and not resumable:
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    (run / "checkpoints" / AVERAGED).unlink(missing_ok=True)  # averaged from checkpoints training will replace
    (run / STARTED_FILE).write_text(key)
    record_data(args.data, run)
    command = [str(Path(sys.executable).parent / "fairseq-train"), str(args.data), "--user-dir",
               str(REPO / "node_transformer"), *flags, "--save-dir", str(run / "checkpoints"),
               "--tensorboard-logdir", str(run / "tb"), *device_flags()]
    (run / "command.txt").write_text(" ".join(command) + "\n")
    with open(run / "train.log", "a") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO).returncode == 0


def translation_flags():
    """The length bound every translation of the study uses: scripts/generate.sh's own default,
    node_transformer/length_bound.py. A kept result translated with another bound is translated again."""
    from node_transformer.length_bound import FLAGS

    return FLAGS


def translate(run, subsets, data, checkpoint):
    """scripts/generate.sh on RUN's CHECKPOINT: {subset name: scores} with fairseq-generate's sentences/s."""
    from node_transformer.training_log import translation_speeds

    env = dict(os.environ, DATA=str(data), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "generate.sh"), str(run), "--checkpoint", str(checkpoint),
                           "--subsets", " ".join(subsets)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    (run / "gen").mkdir(exist_ok=True)
    (run / "gen" / "generate.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise StudyError(f"translating {run.name} failed; see {run / 'gen' / 'generate.log'}")
    scores = json.loads((run / "results.json").read_text())
    speeds = translation_speeds(proc.stderr)
    if len(speeds) != len(subsets):
        raise StudyError(f"translating {run.name}: {len(speeds)} speed lines for {len(subsets)} test sets; "
                         f"see {run / 'gen' / 'generate.log'}")
    return {SUBSETS[subset]: {**scores[SUBSETS[subset]], "sentences_per_second": speed}
            for subset, speed in zip(subsets, speeds)}


def summarise(name, log_text, translation):
    from node_transformer.training_log import best_point, read_training

    try:
        training = read_training(log_text)
    except ValueError:  # stopped before training began
        training = {"updates": 0, "train_seconds": 0.0, "curve": [], "nfe": {}, "budget_skips": 0}
    best = best_point(training["curve"])
    return {
        "experiment": name,
        "updates": training["updates"],
        "train_seconds": training["train_seconds"],
        "seconds_per_update": training["train_seconds"] / max(training["updates"], 1),
        "best_valid_loss": best[2] if best else None,
        "best_at_update": best[1] if best else None,
        "best_at_minutes": best[0] / 60 if best else None,
        "curve": training["curve"],
        "nfe": training["nfe"],
        "budget_skips": training["budget_skips"],
        "translation": translation,
    }


def stop_reason(log_text):
    """The error that ended a training run, from the last lines of its log."""
    for line in reversed(log_text.splitlines()[-200:]):
        match = STOP_LINE.search(line)
        if match:
            return match[0][:300]
    return "training exited with an error"


def final_checkpoint(run, args):
    """The model a run is scored with: under --converged the average of its last interval checkpoints
    (made once training has ended; a run that stopped before its first interval checkpoint has its
    checkpoint_last.pt alone), under --minutes its best checkpoint."""
    if not args.converged:
        return best_checkpoint(run)
    checkpoints = run / "checkpoints"
    averaged = checkpoints / AVERAGED
    if not averaged.is_file() and best_checkpoint(run).is_file():
        from node_transformer.averaging import average_checkpoints, interval_checkpoints

        last = [path for path in [checkpoints / "checkpoint_last.pt"] if path.is_file()]
        average_checkpoints(interval_checkpoints(checkpoints)[-args.average_last:] or last, averaged)
    return averaged


def translate_final(run, args, subsets, stopped):
    """Translate RUN's final model, if it has one: (translation, stopped with any failure added)."""
    checkpoint = final_checkpoint(run, args)
    if not checkpoint.is_file():
        return {}, stopped
    print(f"{run.name}: translating {' '.join(subsets)} with {checkpoint.name}", flush=True)
    try:
        return translate(run, subsets, args.data, checkpoint), stopped
    except StudyError as error:
        return {}, f"{stopped + '; ' if stopped else ''}{error}"


def run_experiment(config, args, subsets):
    """Train and translate one experiment, or keep its earlier result. A run that stops with an error (a
    solver that keeps exceeding its step budget, say) is a result too: it is recorded with its reason,
    translated from its best checkpoint if it has one, and the study goes on."""
    run = args.work / config.stem
    flags = training_flags(config, args)
    key, cap = run_key(flags, args, subsets), update_cap(flags)
    result = finished(run, key, cap)
    translated_as_now = result is not None and result.get("translation_flags") == translation_flags()
    if result is not None and (translated_as_now or not final_checkpoint(run, args).is_file()):
        print(f"{config.stem}: kept (finished earlier)", flush=True)
        return result
    started = time.time()
    if result is not None:
        print(f"{config.stem}: kept the training (finished earlier), translating again with "
              f"{' '.join(translation_flags())}", flush=True)
        training_stopped = result.get("training_stopped", result["stopped"])
    elif trained(run, key, cap):
        print(f"{config.stem}: trained earlier, translating", flush=True)
        training_stopped = None
    else:
        print(f"{config.stem}: training ({'converged schedule' if args.converged else f'{args.minutes:g} min'})",
              flush=True)
        training_stopped = None
        if not train(run, flags, args, key):
            training_stopped = stop_reason((run / "train.log").read_text())
            print(f"{config.stem}: training stopped: {training_stopped}", flush=True)
    translation, stopped = translate_final(run, args, subsets, training_stopped)
    result = {**summarise(config.stem, (run / "train.log").read_text(), translation), "stopped": stopped,
              "training_stopped": training_stopped, "translation_flags": translation_flags(),
              "fingerprint": key, "budget": budget_of(args), "max_update": cap}
    (run / RESULT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{config.stem}: done in {(time.time() - started) / 60:.1f} min", flush=True)
    return result


def _nfe_cell(nfe, direction):
    cells = [f"{side} {nfe[key][0]:.0f}→{nfe[key][1]:.0f}" for side in ("enc", "dec")
             if (key := f"nfe_{side}_{direction}") in nfe]
    return ", ".join(cells) or "-"


def common_update(results, every):
    """The last validation every run reached (updates, a multiple of ``every``): losses there compare what
    the runs learnt per update, whatever an update cost. A run too slow to reach its first such validation
    is left out (its cell stays empty); None when no run reached one."""
    reached = [max((u for _, u, _ in r["curve"] if u % every == 0), default=0) for r in results]
    return min((u for u in reached if u > 0), default=None)


def table_rows(results, subsets, at_update):
    from node_transformer.training_log import loss_at_update

    rows = []
    for r in results:
        scores = [r["translation"].get(SUBSETS[s]) for s in subsets]
        best = f"{r['best_valid_loss']:.2f} (update {r['best_at_update']}, {r['best_at_minutes']:.1f} min)" \
            if r["best_valid_loss"] is not None else "-"
        bleu = " / ".join(f"{score['tokenized_bleu']:.1f}" if score else "-" for score in scores)
        sacre = " / ".join(f"{score['sacrebleu']:.1f}" if score else "-" for score in scores)
        speed = scores[0].get("sentences_per_second") if scores[0] else None
        name = r["experiment"] + (" (stopped)" if r.get("stopped") else "")
        equal = loss_at_update(r["curve"], at_update) if at_update else None
        rows.append([name, r["updates"], f"{r['seconds_per_update']:.2f}", best,
                     f"{equal:.2f}" if equal is not None else "-",
                     _nfe_cell(r["nfe"], "fwd"), _nfe_cell(r["nfe"], "bwd"), r["budget_skips"], bleu, sacre,
                     f"{speed:.1f}" if speed else "-"])
    return rows


def write_record(config, result, args):
    """OUT/records/NAME.json for a converged run's RESULT; an existing record of the same fingerprint (a
    kept experiment) is kept as it is, with the machine it was measured on."""
    from node_transformer import study_record

    path = args.out / RECORDS / f"{config.stem}.json"
    if path.is_file():
        record = study_record.StudyRecord.from_json(path.read_text())
        if (record.fingerprint, record.updates, record.translation) == (result["fingerprint"], result["updates"],
                                                                        result["translation"]):
            return record
    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import machine

    run = args.work / config.stem
    record = study_record.record_from_log(
        config.stem, training_flags(config, args), (run / "train.log").read_text(), result["translation"],
        stopped=result["stopped"], final_model=AVERAGED if (run / "checkpoints" / AVERAGED).is_file() else "",
        machine=machine(), fingerprint=result["fingerprint"])
    study_record.write(record, args.out / RECORDS)
    return record


def recorded(out):
    """Every record in OUT/records, in the plan's order and then by name: the report covers the whole study,
    not only the experiments of the last call."""
    from node_transformer.study_record import read_all

    records = read_all(out / RECORDS)
    order = [name for _, names in CONVERGED_PLAN for name in names]
    return sorted(records.values(), key=lambda r: (order.index(r.experiment) if r.experiment in order else len(order),
                                                   r.experiment))


def write_converged_report(records, out):
    """OUT/study.md, OUT/conclusions.md and OUT/figures/[SECTION/]*.png from RECORDS alone."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq leaves the root logger chatty
    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import Table, publish

    from node_transformer import study_conclusions
    from node_transformer.plot import plot_scalars
    from node_transformer.study_record import as_scalars, table_columns_and_rows

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
             "average of the last interval checkpoints, translations at most 1.2 x source + 10 tokens long.",
        machine="; ".join(sorted({r.machine for r in records if r.machine})) or "not recorded")
    publish(table, out)
    by_name = {r.experiment: r for r in records}
    figures = plot_scalars({name: as_scalars(r) for name, r in by_name.items()}, out / FIGURES, ("png",))
    for section, names in study_conclusions.SECTIONS.items():
        present = [name for name in names if name in by_name]
        if present:
            figures += plot_scalars({name: as_scalars(by_name[name]) for name in present}, out / FIGURES / section,
                                    ("png",))
    for path in figures:
        print(path)
    conclusions = study_conclusions.markdown(study_conclusions.check(by_name), FIGURES)
    (out / "conclusions.md").write_text(
        "### The conclusions, checked against the converged study's records\n\n" + conclusions +
        f"\nRules: node_transformer/study_conclusions.py. Rebuilt with scripts/study.sh --report.\n")
    print(conclusions)


def write_results(results, args, subsets):
    """The --minutes study's OUT/study.md and OUT/study.json."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import Table, publish

    budget = f"{args.minutes:g} minutes of training each"
    test_names = " / ".join(SUBSETS[s] for s in subsets)
    command = f"scripts/study.sh --minutes {args.minutes:g}" + \
        (" --all-test-sets" if args.all_test_sets else "") + " " + " ".join(args.experiments)
    stopped = "".join(f" {r['experiment']} stopped: {r['stopped']}." for r in results if r.get("stopped"))
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
    (args.out / "study.json").write_text(json.dumps({"command": command, "equal_updates": at_update, "results": results}, indent=1) + "\n")


def plot(args):
    """The figures of every run that logged anything (a run stopped at its first batch has no curves)."""
    import logging

    from node_transformer.plot import PlotError, load_run, plot_runs

    logging.getLogger().setLevel(logging.WARNING)
    runs = []
    for config in args.configs:
        try:
            load_run(args.work / config.stem)
            runs.append(args.work / config.stem)
        except PlotError as error:
            print(f"study: {config.stem} is left out of the figures: {error}", file=sys.stderr)
    if runs:
        for path in plot_runs(runs, args.out / "study", ("png",)):
            print(path)


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        write_converged_report([r for r in recorded(args.out) if r.experiment in set(args.experiments)], args.out)
        return 0
    subsets = list(SUBSETS) if args.all_test_sets or args.converged else ["test"]
    args.work.mkdir(parents=True, exist_ok=True)
    with open(args.work / ".study.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"study: another study runner is using {args.work}; wait for it to finish", file=sys.stderr)
            return 2
        results = []
        for config in args.configs:
            results.append(run_experiment(config, args, subsets))
            if args.converged:  # each record as its run ends: a study of days leaves its results on the way
                write_record(config, results[-1], args)
                write_converged_report(recorded(args.out), args.out)
        if not args.converged:
            write_results(results, args, subsets)
            plot(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
