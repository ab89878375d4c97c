"""Where each run of a resumable study stands (scripts/study.sh --converged --progress), read from the run
directories (their train.log, the fingerprint each was started with, the result kept once it is
translated), and from the committed records and carried runs where this machine has no run directory: a
study of days is watched while it trains, without stopping it or touching its files.

For each run: finished (and how: plateau, update cap, or the error it stopped on; "(recorded)" where only
its committed record tells it, as on a new machine), translating (trained, its result not written yet),
unfinished (trained part of the way: the runner resumes it; "carried" where it resumes from the repository's
copy, node_experiments/carry.py), to start again (its directory holds a run of other flags, or one past a
cap lowered since) or not started; its updates,
best validation loss, the validations since that best (what fairseq's --patience counts), its median
seconds per update over the run and over its last few logged intervals, and how many updates it has left: at
least until its patience could run out with no improvement (or its cap comes first), at most until its cap;
the hours left are counted at the recent pace (an adaptive NODE's cost per update rises with its NFE). A
resumed run repeats the updates after its last checkpoint, so "at most" may be short by up to one checkpoint
interval.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .experiment_config import flag_value
from .runner import LOCK_FILE, STOP_SIGNAL, Experiment, Runner
from .study_record import STOPPED, StudyRecord, clean_seconds_per_update
from .training_log import Training, best_point

FINISHED, TRANSLATING, UNFINISHED = "finished", "translating", "unfinished"
RESTARTS, NOT_STARTED = "starts again", "not started"
RECENT_INTERVALS = 5  # fairseq's logged intervals (--log-interval updates each) that make the recent pace


@dataclass(frozen=True)
class Progress:
    experiment: str
    state: str  # FINISHED, TRANSLATING, UNFINISHED, RESTARTS or NOT_STARTED
    how: str  # how a finished run ended ("plateau", "update cap", or its error); why one starts again
    updates: int
    cap: int  # its --max-update (0: none)
    best_valid_loss: Optional[float]
    best_at_update: Optional[int]
    validations_since_best: int
    seconds_per_update: Optional[float]  # the median over logged intervals: a held stretch is an outlier
    recent_seconds_per_update: Optional[float]  # the median over the last RECENT_INTERVALS of them
    least_updates_left: int
    most_updates_left: Optional[int]  # None: no cap

    @property
    def most_hours_left(self) -> Optional[float]:
        if self.most_updates_left is None or self.recent_seconds_per_update is None:
            return None
        return self.most_updates_left * self.recent_seconds_per_update / 3600

    @property
    def done_training(self) -> bool:
        return self.state in (FINISHED, TRANSLATING)


def progress(runner: Runner, experiment: Experiment) -> Progress:
    flags = runner.flags(experiment)
    key, cap = runner.key_and_cap(experiment)
    record = runner.recorded(experiment)
    if record is not None:
        return recorded_progress(record, cap)
    patience = int(flag_value(flags, "--patience", "0"))
    every = int(flag_value(flags, "--validate-interval-updates", "0"))
    run = runner.run_dir(experiment)
    resumes = runner.resumes(run, key, cap)
    carried = None if resumes else runner.carried(experiment)
    if carried is not None:  # what the runner resumes from on this machine
        run, resumes = carried, True
    training = run.training_so_far() if resumes else Training.empty()
    curve = training.curve
    best = best_point(curve)
    since_best = sum(point.updates > best.updates for point in curve) if best else 0
    updates = training.updates
    result = runner.finished(run, key, cap) if resumes else None
    how, least, most = "", 0, 0
    if result is not None:
        state = FINISHED
        how = STOPPED if result.stopped else ("plateau" if runner.plateaued(run) else "update cap")
    elif resumes and runner.trained(run, key, cap):
        state = TRANSLATING
    else:
        if resumes:
            state, how = UNFINISHED, ("carried" if carried else "")
        elif run.path.exists():
            state, how = RESTARTS, ("other flags" if not runner.started_as(run, key) else "past a lowered cap")
        else:
            state = NOT_STARTED
        most = cap - updates if cap else None
        if patience and every:
            # Each validation to come brings no improvement; before the first, that one is the best.
            validations = patience - since_best if curve else patience + 1
            least = max(0, validations * every - (updates - (curve[-1].updates if curve else 0)))
        if most is not None:
            least = min(least, most)
    return Progress(
        experiment=experiment.name, state=state, how=how, updates=updates, cap=cap,
        best_valid_loss=best.loss if best else None, best_at_update=best.updates if best else None,
        validations_since_best=since_best, least_updates_left=least, most_updates_left=most,
        seconds_per_update=clean_seconds_per_update(training.inner),
        recent_seconds_per_update=clean_seconds_per_update(training.inner[-RECENT_INTERVALS:]))


def recorded_progress(record: StudyRecord, cap) -> Progress:
    """A run finished on another machine, as its committed record tells it."""
    since_best = sum(update > record.best_at_update for update in record.valid.updates) if record.best_at_update else 0
    return Progress(
        experiment=record.experiment, state=FINISHED, how=f"{record.short_status} (recorded)", updates=record.updates,
        cap=cap, best_valid_loss=record.best_valid_loss, best_at_update=record.best_at_update,
        validations_since_best=since_best, seconds_per_update=record.seconds_per_update,
        recent_seconds_per_update=record.seconds_per_update, least_updates_left=0, most_updates_left=0)


def runner_active(work) -> bool:
    """Whether a runner holds WORK's lock now, read from /proc/locks (Linux): trying the lock instead could
    make a runner starting at that instant refuse to start."""
    path = Path(work) / LOCK_FILE
    if not path.is_file():
        return False
    status = path.stat()
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        return False  # no /proc/locks: not known, said as not held
    return any(" FLOCK " in line and f" {device} " in line and "->" not in line for line in locks.splitlines())


def stop_runner(work) -> Optional[int]:
    """Ask the runner holding WORK's lock to stop (Runner.request_stop); its process id, or None where its lock
    holds none (a runner older than the process id in its lock)."""
    try:
        pid = int((Path(work) / LOCK_FILE).read_text().strip())
        os.kill(pid, STOP_SIGNAL)
    except (OSError, ValueError):  # no id yet, or the id of a runner that has exited since
        return None
    return pid


def markdown(rows: List[Progress], work, active: bool) -> str:
    """The progress table, with a line on whether a runner is training now (ACTIVE) and the hours left at most."""
    lines = ["| experiment | state | updates / cap | best valid loss (update) | validations since best | "
             f"median s/update (last {RECENT_INTERVALS} intervals) | updates left (at least - at most) | "
             "hours left (at most, at the recent pace) |",
             "|---|---|---|---|---|---|---|---|"]
    for p in rows:
        state = f"{p.state}: {p.how}" if p.how else p.state
        best = f"{p.best_valid_loss:.3f} ({p.best_at_update})" if p.best_valid_loss is not None else "-"
        speed = (f"{p.seconds_per_update:.2f} ({p.recent_seconds_per_update:.2f})"
                 if p.seconds_per_update and p.recent_seconds_per_update else "-")
        most = "no cap" if p.most_updates_left is None else p.most_updates_left
        hours = f"{p.most_hours_left:.1f}" if p.most_hours_left is not None else "-"
        lines.append(f"| {p.experiment} | {state} | {p.updates} / {p.cap or '-'} | {best} | "
                     f"{p.validations_since_best} | {speed} | {p.least_updates_left} - {most} | {hours} |")
    known = [p.most_hours_left for p in rows if p.most_hours_left is not None]
    unknown = [p.experiment for p in rows if p.most_hours_left is None and not p.done_training]
    lines.append("")
    lines.append(f"{'A runner is' if active else 'No runner is'} using {work}. "
                 f"At most {sum(known):.1f} h left for the runs that have trained"
                 + (f"; not yet measured: {', '.join(unknown)}." if unknown else "."))
    return "\n".join(lines) + "\n"
