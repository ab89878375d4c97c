"""This machine's speed in the study's own unit, measured before every training session of a converged run.

Two machines of one kind can differ by a third in the seconds an update takes (node_fast_separated_euler:
0.81 s/update on one, 0.61 on the next, both "AMD EPYC, 2 cores"), and a run resumed on another machine
mixes both. So before each fairseq-train call the runner trains the yardstick, transformer_1layer on the
study's schedule for a few logged intervals (its update's cost does not depend on what it has learnt), and
writes its clean seconds per update into the run's train.log:

    2026-12-02 12:00:00 | INFO | node_experiments.yardstick | transformer_1layer 0.912 s/update on this machine

Each session's seconds per update divided by its yardstick's is then the run's cost in transformer_1layer
updates, which compares across machines (study_record.Session).
"""
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

YARDSTICK = "transformer_1layer"
UPDATES, LOG_EVERY = 60, 10  # six logged intervals: their median drops the first, which includes start-up
LINE = re.compile(r"node_experiments\.yardstick \| \S+ ([\d.eE+-]+) s/update on this machine")


def line(seconds_per_update) -> str:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} | INFO | node_experiments.yardstick | {YARDSTICK} {seconds_per_update:.6g} s/update on this machine\n"


def measure(runner, scratch) -> Optional[float]:
    """The clean seconds per update of the yardstick under RUNNER's budget and data, trained in SCRATCH
    (emptied before and after); None, said on stderr, if it failed: the run then trains without one."""
    from .run_dir import RunDir
    from .runner import Experiment
    from .study_record import clean_seconds_per_update

    run = RunDir(scratch)
    flags = runner.flags(Experiment.from_config(YARDSTICK, UPDATES)) + [
        "--log-interval", str(LOG_EVERY), "--disable-validation", "--no-save"]
    try:
        trained = run.train(runner.data, flags, fresh=True) == 0
        seconds = clean_seconds_per_update(run.training_so_far().inner) if trained else None
        if seconds is None:
            print(f"yardstick: {YARDSTICK} trained no update here:\n{run.log_text()[-2000:]}", file=sys.stderr)
        return seconds
    except OSError as error:  # a full disk, say: the run trains on without its yardstick
        print(f"yardstick: not measured: {error}", file=sys.stderr)
        return None
    finally:
        shutil.rmtree(run.path, ignore_errors=True)


def seconds_in(text):
    """The yardstick's seconds per update in a log line, or None."""
    match = LINE.search(text)
    return float(match[1]) if match else None


def scratch_of(work) -> Path:
    return Path(work) / ".yardstick"
