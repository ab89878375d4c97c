"""Where each run of a resumable study stands (scripts/study.sh --converged --progress), read from the run
directories alone: a study of days is watched while it trains, without stopping it or touching its files.

For each run: finished (plateau, update cap or stopped, as its kept result says), unfinished (trained part
of the way; the runner resumes it), to start again (its directory holds a run of other flags) or not started;
its updates, best validation loss, the validations since that best (fairseq's --patience counts them), its
median seconds per update, and how many updates it has left: at least until its patience runs out with no
improvement (or its cap comes first), at most until its cap.
"""
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .experiment_config import flag_value
from .runner import LOCK_FILE, Experiment, Runner, update_cap
from .study_record import clean_seconds_per_update
from .training_log import best_point

FINISHED, UNFINISHED, RESTARTS, NOT_STARTED = "finished", "unfinished", "starts again (other flags)", "not started"


@dataclass(frozen=True)
class Progress:
    experiment: str
    state: str  # FINISHED ("finished: plateau" ...), UNFINISHED, RESTARTS or NOT_STARTED
    updates: int
    cap: int  # its --max-update (0: none)
    best_valid_loss: Optional[float]
    best_at_update: Optional[int]
    validations_since_best: int
    seconds_per_update: Optional[float]  # the median over logged intervals: a held stretch is an outlier
    least_updates_left: int
    most_updates_left: Optional[int]  # None: no cap

    @property
    def most_hours_left(self) -> Optional[float]:
        if self.most_updates_left is None or self.seconds_per_update is None:
            return None
        return self.most_updates_left * self.seconds_per_update / 3600


def progress(runner: Runner, experiment: Experiment) -> Progress:
    run = runner.run_dir(experiment)
    flags = runner.flags(experiment)
    key, cap = runner.fingerprint(flags), update_cap(flags)
    patience = int(flag_value(flags, "--patience", 0))
    every = int(flag_value(flags, "--validate-interval-updates", 0))
    started = runner.started_as(run, key)
    training = _training(run) if started else None
    curve = training.curve if training else []
    best = best_point(curve)
    since_best = sum(point.updates > best.updates for point in curve) if best else 0
    updates = training.updates if training else 0
    result = runner.finished(run, key, cap) if started else None
    if result is not None:
        how = result.stopped or ("plateau" if runner.plateaued(run) else "update cap")
        state, least, most = f"{FINISHED}: {how}", 0, 0
    else:
        state = UNFINISHED if started else (RESTARTS if run.path.exists() else NOT_STARTED)
        most = cap - updates if cap else None
        least = 0
        if patience and every:  # each validation still to come before patience runs out brings no improvement
            since_last_validation = updates - curve[-1].updates if curve else 0
            least = max(0, (patience - since_best) * every - since_last_validation)
        if most is not None:
            least = min(least, most)
    return Progress(
        experiment=experiment.name, state=state, updates=updates, cap=cap,
        best_valid_loss=best.loss if best else None, best_at_update=best.updates if best else None,
        validations_since_best=since_best, least_updates_left=least, most_updates_left=most,
        seconds_per_update=clean_seconds_per_update(training.inner) if training else None)


def _training(run):
    try:
        return run.training()
    except ValueError:  # no log, or no first update in it yet
        return None


def runner_active(work) -> bool:
    """Whether a runner holds WORK's lock now."""
    path = Path(work) / LOCK_FILE
    if not path.is_file():
        return False
    with open(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
    return False


def markdown(rows, work) -> str:
    """The progress table, with a line on whether a runner is training now and the hours left at most."""
    lines = ["| experiment | state | updates / cap | best valid loss (update) | validations since best | "
             "s/update | updates left (at least - at most) | hours left (at most) |",
             "|---|---|---|---|---|---|---|---|"]
    for p in rows:
        best = f"{p.best_valid_loss:.3f} ({p.best_at_update})" if p.best_valid_loss is not None else "-"
        speed = f"{p.seconds_per_update:.2f}" if p.seconds_per_update else "-"
        most = "no cap" if p.most_updates_left is None else p.most_updates_left
        hours = f"{p.most_hours_left:.1f}" if p.most_hours_left is not None else "-"
        lines.append(f"| {p.experiment} | {p.state} | {p.updates} / {p.cap or '-'} | {best} | "
                     f"{p.validations_since_best} | {speed} | {p.least_updates_left} - {most} | {hours} |")
    known = [p.most_hours_left for p in rows if p.most_hours_left is not None]
    unknown = [p.experiment for p in rows if p.most_hours_left is None and not p.state.startswith(FINISHED)]
    lines.append("")
    lines.append(f"{'A runner is' if runner_active(work) else 'No runner is'} using {work}. "
                 f"At most {sum(known):.1f} h left for the runs that have trained"
                 + (f"; not yet measured: {', '.join(unknown)}." if unknown else "."))
    return "\n".join(lines) + "\n"
