"""Running a set of experiments under one budget, strictly one after another, each trained into its own run
directory and translated: what the study (scripts/study.py) and the equal-time and regulariser benchmarks
(benchmarks/equal_time.py, benchmarks/regularisers.py) are defined on. A definition says which experiments,
which budget and which table; this module says how a run is trained, kept, resumed and translated.

Two budgets:
- TimeBudget: early training, M minutes of wall time each (fairseq's --stop-time-hours; the config's epoch
  and update limits lifted), validating every N updates. A run interrupted while training starts again
  from scratch: a time budget cannot be resumed honestly.
- Schedule: a schedule's flags (configs/base/converged_schedule.args) replacing the experiment's own, each
  run to its plateau (fairseq's --patience) or its update cap, never wall time. An interrupted run resumes
  from its checkpoint_last.pt (fairseq's exact resume); its final model averages its last interval
  checkpoints.

A run's result (RUN/study_result.json) is kept when the runner is started again with the same flags, budget
and test sets (its fingerprint); a run interrupted while translating is only translated; one translated
with another length bound is translated again without training again. One runner per work directory at a
time (a lock file, which holds the runner's process id): on a shared machine a wall-time budget means nothing
otherwise. A runner asked to stop (request_stop; scripts/study.py on STOP_SIGNAL) stops where nothing is
lost: a training run after its current update, saved to its checkpoint_last.pt to be resumed; a translation
at once, the test sets it finished kept and the one under way started again; anything else once it is done.
"""
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .carry import LAST_CHECKPOINT, CarryError, checkpoint_updates, copy_resumable, copy_trained
from .experiment_config import config_path, flag_value, flag_words, read_flag_groups, without_flag
from .length_bound import FLAGS as TRANSLATION_FLAGS
from .run_dir import RunDir, TranslationError
from .study_record import BUDGET_STOP, StudyRecord, record_from_log
from .study_record import write as write_record
from .training_log import EARLY_STOP_LINE, Training, best_point, last_common_validation, last_error, last_session

RESULT_FILE = "study_result.json"  # in a run directory: the runner's result of it
STARTED_FILE = "study_started_as"  # the fingerprint a run was started with: only such a run is resumed
CONVERGED_TRANSLATION_SHARDS = 8  # a converged run's test set is translated in up to 8 resumable shards
AVERAGED = "checkpoint_averaged.pt"  # a scheduled run's final model: the average of its last checkpoints
LOCK_FILE = ".study.lock"
# Stops a runner, which passes it on to its fairseq-train: the plugin's save-and-stop (node_transformer/preemption.py)
STOP_SIGNAL = signal.SIGUSR1
CAP_FLAG = "--max-update"
TRAINED_LINE = "fairseq_cli.train | done training in "
LOG_FLAGS = ["--log-format", "simple", "--log-interval", "50"]


class RunnerError(Exception):
    pass


class RunnerStopped(RunnerError):
    """The runner stopped as asked (Runner.request_stop), with nothing lost."""


@dataclass(frozen=True)
class Experiment:
    """A config's own flags, and the update cap a plan gives it (None: the budget's)."""

    name: str
    flag_groups: Dict[str, List[str]]
    update_cap: Optional[int] = None

    @classmethod
    def from_config(cls, name_or_path, update_cap=None) -> "Experiment":
        path = config_path(name_or_path)
        return cls(path.stem, read_flag_groups(path), update_cap)


@dataclass(frozen=True)
class TimeBudget:
    minutes: float
    validate_every: int
    resumable = False

    def describe(self) -> str:
        return f"{self.minutes:g} min"

    def key(self) -> dict:
        return {"minutes": self.minutes, "validate_every": self.validate_every}

    def flags(self, experiment: Experiment) -> List[str]:
        """The experiment's flags and those that make time the only limit."""
        every = str(self.validate_every)
        return flag_words(experiment.flag_groups) + LOG_FLAGS + [
            "--max-epoch", "0", "--max-update", "0", "--stop-time-hours", f"{self.minutes / 60:.6f}",
            "--validate-interval-updates", every, "--save-interval-updates", every, "--keep-interval-updates", "1",
            "--no-epoch-checkpoints", "--no-last-checkpoints"]

    def final_checkpoint(self, run: RunDir) -> Path:
        return run.checkpoint("checkpoint_best.pt")


# The schedule's flags a config may set when that flag is its experiment's question (gradient clipping, for
# node_full_tol1e-2_clip) or its own choice (the gradient through the solve: the schedule's backprop is the
# default, node_full_tol1e-2_adjoint and its variants take the adjoint): there the config's value stands; every
# other flag of the schedule replaces the config's.
QUESTION_FLAGS = ("--clip-norm", "--node-gradient")


@dataclass(frozen=True)
class Schedule:
    path: Path
    average_last: int = 10
    resumable = True

    def describe(self) -> str:
        return "converged schedule"

    def key(self) -> dict:
        return {"schedule": "converged", "average_last": self.average_last}

    def flag_groups(self, experiment: Experiment) -> Dict[str, List[str]]:
        """The experiment's flags with the schedule's replacing any it sets (but its QUESTION_FLAGS), and its
        update cap."""
        cap = {CAP_FLAG: [str(experiment.update_cap)]} if experiment.update_cap else {}
        schedule = {flag: words for flag, words in read_flag_groups(self.path).items()
                    if not (flag in QUESTION_FLAGS and flag in experiment.flag_groups)}
        return {**experiment.flag_groups, **schedule, **cap}

    def flags(self, experiment: Experiment) -> List[str]:
        return flag_words(self.flag_groups(experiment))

    def final_checkpoint(self, run: RunDir) -> Path:
        """The average of the run's last interval checkpoints, made once training has ended (a run that
        stopped before its first interval checkpoint has its checkpoint_last.pt alone)."""
        averaged = run.checkpoint(AVERAGED)
        if not averaged.is_file():
            from .averaging import average_checkpoints, interval_checkpoints

            # checkpoint_best.pt may be missing: a run carried to another machine (carry.py) has none until
            # a validation there matches its best
            last = [path for path in [run.checkpoint(LAST_CHECKPOINT)] if path.is_file()]
            saved = interval_checkpoints(run.checkpoints)[-self.average_last:] or last
            if saved:
                average_checkpoints(saved, averaged)
        return averaged


@dataclass
class RunResult:
    """What one run did and scored (RUN/study_result.json)."""

    experiment: str
    updates: int
    train_seconds: float
    seconds_per_update: float
    best_valid_loss: Optional[float]
    best_at_update: Optional[int]
    best_at_minutes: Optional[float]
    curve: list  # training_log.ValidPoint as [seconds, updates, loss]
    nfe: dict
    budget_skips: int
    translation: dict = field(default_factory=dict)  # run_dir.Translation
    stopped: Optional[str] = None  # why the run stopped, training or translating, if not as planned
    training_stopped: Optional[str] = None
    translation_flags: List[str] = field(default_factory=list)
    fingerprint: str = ""
    budget: dict = field(default_factory=dict)
    max_update: int = 0

    @classmethod
    def from_training(cls, experiment, training: Training, **outcome) -> "RunResult":
        best = best_point(training.curve)
        return cls(experiment=experiment, updates=training.updates, train_seconds=training.train_seconds,
                   seconds_per_update=training.seconds_per_update, best_valid_loss=best.loss if best else None,
                   best_at_update=best.updates if best else None, best_at_minutes=best.seconds / 60 if best else None,
                   curve=training.curve, nfe=training.nfe, budget_skips=training.budget_skips, **outcome)

    @classmethod
    def read(cls, path) -> "RunResult":
        data = json.loads(Path(path).read_text())
        data.setdefault("training_stopped", data.get("stopped"))
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def _fingerprint(flags, budget_key, subsets) -> str:
    text = json.dumps({"flags": flags, "budget": budget_key, "subsets": list(subsets)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def update_cap(flags) -> int:
    """The --max-update of a run's flags (0: none)."""
    return int(flag_value(flags, CAP_FLAG, "0"))


def stop_reason(log_text) -> str:
    """The error that ended a training run, from the last lines of its log."""
    return last_error(log_text) or "training exited with an error"


def _updates(run: RunDir) -> int:
    return run.training_so_far().updates


@dataclass
class Runner:
    budget: object  # TimeBudget or Schedule
    work: Path  # the run directories: WORK/NAME
    data: Path
    subsets: Sequence[str] = ("test",)  # fairseq's test set names to translate; none: training alone
    keep: bool = True  # keep a finished result of the same fingerprint; False: every run trains afresh
    kept: List[str] = field(default_factory=list)  # the experiments kept as they were, in order
    records: Optional[Path] = None  # RECORDS/NAME.json: a finished record there keeps a run this machine lacks
    carry: Optional[Path] = None  # CARRY/NAME: an unfinished run carried from another machine (carry.py)
    yardstick: bool = False  # measure this machine's yardstick before each training session (yardstick.py)
    # each test set translated in up to this many shards, each kept once finished (RunDir.translate): a slow
    # model's test set can take longer than a session has
    translation_shards: int = 1
    stop_requested: bool = False  # request_stop: stop where nothing is lost
    training: Optional[subprocess.Popen] = field(default=None, repr=False)  # the run's fairseq-train, while it trains
    translating: Optional[subprocess.Popen] = field(default=None, repr=False)  # its fairseq-generate, while it runs

    def run_dir(self, experiment: Experiment) -> RunDir:
        return RunDir(Path(self.work) / experiment.name)

    def flags(self, experiment: Experiment) -> List[str]:
        return self.budget.flags(experiment)

    def key_and_cap(self, experiment: Experiment):
        """The experiment's fingerprint under this runner and its update cap (0: none)."""
        flags = self.flags(experiment)
        return self.fingerprint(flags), update_cap(flags)

    def fingerprint(self, flags) -> str:
        """A resumable budget leaves the update cap out: a run given a higher cap goes on from where it
        stopped (fairseq's resume) instead of starting again."""
        if self.budget.resumable:
            flags = without_flag(flags, CAP_FLAG)
        return _fingerprint(flags, self.budget.key(), self.subsets)

    # --- the state a run directory is in ---
    @staticmethod
    def plateaued(run: RunDir) -> bool:
        """Whether the run's training stopped on its plateau: no higher cap extends it."""
        return EARLY_STOP_LINE in last_session(run.log_text())

    @staticmethod
    def started_as(run: RunDir, key) -> bool:
        path = run.path / STARTED_FILE
        return path.is_file() and path.read_text() == key

    def finished(self, run: RunDir, key, cap) -> Optional[RunResult]:
        """The run's result if it was trained and translated as KEY up to CAP updates (or to its plateau)."""
        path = run.path / RESULT_FILE
        if not self.keep or not path.is_file():
            return None
        result = RunResult.read(path)
        if result.fingerprint != key:
            return None
        return result if result.max_update == cap or self.plateaued(run) else None

    def resumes(self, run: RunDir, key, cap) -> bool:
        """Whether training the run goes on from its checkpoint_last.pt: a resumable budget, the run started
        with the same fingerprint, and not trained past the cap (a cap lowered since starts it again)."""
        return self.budget.resumable and self.started_as(run, key) and not (cap and _updates(run) > cap)

    def recorded(self, experiment: Experiment) -> Optional[StudyRecord]:
        """The experiment's record in RECORDS where it finished training with these flags (to its plateau,
        its cap, or an error that stopped it) and its run directory holds no run of these flags: a new machine
        keeps what the repository recorded instead of training it again."""
        if self.records is None or not self.keep:
            return None
        path = Path(self.records) / f"{experiment.name}.json"
        if not path.is_file():
            return None
        key, cap = self.key_and_cap(experiment)
        if self.started_as(self.run_dir(experiment), key):
            return None  # the run directory is the newer word
        record = StudyRecord.from_json(path.read_text())
        return record if record.finished_as(key, cap) else None

    def carried(self, experiment: Experiment) -> Optional[RunDir]:
        """The experiment's unfinished run in CARRY where it resumes with these flags, within the cap."""
        if self.carry is None:
            return None
        carried = RunDir(Path(self.carry) / experiment.name)
        if not carried.checkpoint(LAST_CHECKPOINT).is_file():
            return None
        return carried if self.resumes(carried, *self.key_and_cap(experiment)) else None

    def carry_out(self, experiment: Experiment) -> str:
        """Copy the experiment's run into CARRY if it is unfinished (carry.py), or drop its carried copy once it
        has finished; says what it did."""
        run, carried = self.run_dir(experiment), RunDir(Path(self.carry) / experiment.name)
        key, cap = self.key_and_cap(experiment)
        if self.recorded(experiment) or self.finished(run, key, cap):
            if carried.path.exists():
                shutil.rmtree(carried.path)
                return "finished: its carried copy removed"
            return "finished"
        if self.trained(run, key, cap):
            final = self.budget.final_checkpoint(run)
            if not final.is_file():
                return "trained, with no checkpoint to translate: nothing to carry"
            finished = copy_trained(run, carried, STARTED_FILE, final)
            return f"trained, carried with its final model and {finished} finished translation(s) to go on from"
        if not (self.resumes(run, key, cap) and run.checkpoint(LAST_CHECKPOINT).is_file()):
            return "carried as it was" if self.carried(experiment) else "nothing to carry"
        if self.carried(experiment) is not None and self.carried_further(run, carried, True):
            return (f"not carried: the carried copy is further along (update "
                    f"{checkpoint_updates(carried.checkpoint(LAST_CHECKPOINT))}) than this machine's run")
        return f"carried at update {copy_resumable(run, carried, STARTED_FILE)}"

    @staticmethod
    def carried_further(run: RunDir, carried: RunDir, resumes: bool) -> bool:
        """Whether the carried copy is further along than the run directory (which RESUMES or not): a machine
        that kept an older run directory must not train again what another machine has trained since."""
        if not resumes or not run.checkpoint(LAST_CHECKPOINT).is_file():
            return True
        try:
            here = checkpoint_updates(run.checkpoint(LAST_CHECKPOINT))
        except CarryError:
            return True  # a half-written checkpoint here: the copy is the one to resume from
        try:
            return checkpoint_updates(carried.checkpoint(LAST_CHECKPOINT)) > here
        except CarryError:
            return False

    def trained(self, run: RunDir, key, cap) -> bool:
        """Whether the run finished training as KEY (to its plateau, CAP updates, or its solves' step budget's
        stop, which training again would only repeat) and was interrupted after it, while translating."""
        if not (self.keep and self.started_as(run, key)):
            return False
        if self.budget_stop(run) is not None:
            return True
        if TRAINED_LINE not in last_session(run.log_text()):
            return False
        return self.plateaued(run) or not cap or _updates(run) == cap

    def restored_trained(self, experiment: Experiment, key, cap) -> bool:
        """Whether the experiment's carried copy finished training as KEY (carry_out copied it while it
        translated); if so it replaces the run directory, which had not."""
        if self.carry is None or not self.trained(carried := RunDir(Path(self.carry) / experiment.name), key, cap):
            return False
        run = self.run_dir(experiment)
        if run.path.exists():
            shutil.rmtree(run.path)
        shutil.copytree(carried.path, run.path)
        print(f"{experiment.name}: restored from {carried.path}", flush=True)
        return True

    @staticmethod
    def budget_stop(run: RunDir) -> Optional[str]:
        """The error of the solves' step budget (NODETrainingStopped) that ended the run's last training call,
        or None."""
        error = last_error(last_session(run.log_text()))
        return error if error is not None and BUDGET_STOP in error else None

    # --- one run ---
    def train(self, experiment: Experiment, flags, key) -> Optional[str]:
        """Train the experiment; None, or why its training stopped. A resumable budget resumes a run started
        with the same fingerprint that has not trained past the cap (a cap lowered since starts it again)."""
        run = self.run_dir(experiment)
        resumes = self.resumes(run, key, update_cap(flags))
        carried = self.carried(experiment)
        restores = carried is not None and self.carried_further(run, carried, resumes)
        if (restores or not resumes) and run.path.exists():
            shutil.rmtree(run.path)  # restored whole: no interval checkpoint of an older run directory stays
        if restores:
            try:
                updates = copy_resumable(carried, run, STARTED_FILE)
                print(f"{experiment.name}: resuming at update {updates} from {carried.path}", flush=True)
            except CarryError as error:
                print(f"{experiment.name}: not resuming from {carried.path}: {error}", flush=True)
        run.path.mkdir(parents=True, exist_ok=True)
        run.checkpoint(AVERAGED).unlink(missing_ok=True)  # averaged from checkpoints training will replace
        (run.path / STARTED_FILE).write_text(key)
        if self.yardstick:  # a run of days may resume on another machine: its speed in comparable units
            from . import yardstick

            seconds = yardstick.measure(self, yardstick.scratch_of(self.work))
            if seconds is not None:
                with open(run.train_log, "a") as log:
                    log.write(yardstick.line(seconds))
        self.stop_if_requested(f"before training {experiment.name}")
        try:
            returncode = run.train(self.data, flags, started=self.training_started)
        finally:
            self.training = None
        if self.stop_requested:  # whatever fairseq-train's exit: the next runner finds the run as it left it
            raise RunnerStopped(f"stopped as asked: {experiment.name} at update {self.resumes_at(run)}, in its "
                                f"{LAST_CHECKPOINT}")
        return None if returncode == 0 else stop_reason(run.log_text())

    # --- stopping as asked ---
    def request_stop(self):
        """Stop at the next point where nothing is lost: a training run after its current update, its
        fairseq-train having saved checkpoint_last.pt (node_transformer/preemption.py); a translation at
        once, its finished test sets kept; a yardstick or record once it is done. Safe in a signal handler."""
        self.stop_requested = True
        training = self.training
        if training is not None:
            training.send_signal(STOP_SIGNAL)  # nothing if it has exited
        translating = self.translating
        if translating is not None:
            translating.terminate()  # the test sets and shards finished before it are kept (RunDir.translate)

    def training_started(self, process: subprocess.Popen):
        self.training = process
        if self.stop_requested:  # asked while fairseq-train was being started
            process.send_signal(STOP_SIGNAL)

    def translation_started(self, process: subprocess.Popen):
        self.translating = process
        if self.stop_requested:
            process.terminate()

    def stop_if_requested(self, where: str):
        if self.stop_requested:
            raise RunnerStopped(f"stopped as asked: {where}")

    @staticmethod
    def resumes_at(run: RunDir) -> str:
        try:
            return str(checkpoint_updates(run.checkpoint(LAST_CHECKPOINT)))
        except (CarryError, FileNotFoundError):
            return "0 (no checkpoint yet: it starts again)"

    def translate_final(self, run: RunDir, stopped):
        """Translate the run's final model, if it has one: (translation, stopped with any failure added)."""
        if not self.subsets:
            return {}, stopped
        checkpoint = self.budget.final_checkpoint(run)
        if not checkpoint.is_file():
            return {}, stopped
        print(f"{run.name}: translating {' '.join(self.subsets)} with {checkpoint.name}", flush=True)
        try:
            return run.translate(self.data, checkpoint, self.subsets, keep_finished=True,
                                 shards=self.translation_shards, started=self.translation_started), stopped
        except TranslationError as error:
            self.stop_if_requested(f"{run.name} while translating (its finished test sets are kept)")
            return {}, f"{stopped + '; ' if stopped else ''}translating {run.name}: {error}"
        finally:
            self.translating = None

    def run(self, experiment: Experiment) -> RunResult:
        """Train and translate one experiment, or keep its earlier result. A run that stops with an error (a
        solver that keeps exceeding its step budget, say) is a result too: recorded with its reason,
        translated from its final checkpoint if it has one."""
        run = self.run_dir(experiment)
        flags = self.flags(experiment)
        key, cap = self.fingerprint(flags), update_cap(flags)
        result = self.finished(run, key, cap)
        translated_as_now = result is not None and result.translation_flags == TRANSLATION_FLAGS
        if result is not None and (translated_as_now or not self.subsets
                                   or not self.budget.final_checkpoint(run).is_file()):
            print(f"{experiment.name}: kept (finished earlier)", flush=True)
            self.kept.append(experiment.name)
            return result
        started = time.time()
        if result is not None:
            print(f"{experiment.name}: kept the training (finished earlier), translating again with "
                  f"{' '.join(TRANSLATION_FLAGS)}", flush=True)
            training_stopped = result.training_stopped
        elif self.trained(run, key, cap) or self.restored_trained(experiment, key, cap):
            print(f"{experiment.name}: trained earlier, translating", flush=True)
            training_stopped = self.budget_stop(run)
        else:
            print(f"{experiment.name}: training ({self.budget.describe()})", flush=True)
            training_stopped = self.train(experiment, flags, key)
            if training_stopped:
                print(f"{experiment.name}: training stopped: {training_stopped}", flush=True)
        translation, stopped = self.translate_final(run, training_stopped)
        result = RunResult.from_training(
            experiment.name, run.training_so_far(), translation=translation, stopped=stopped,
            training_stopped=training_stopped, translation_flags=TRANSLATION_FLAGS, fingerprint=key,
            budget=self.budget.key(), max_update=cap)
        (run.path / RESULT_FILE).write_text(result.to_json())
        print(f"{experiment.name}: done in {(time.time() - started) / 60:.1f} min", flush=True)
        return result

    def run_all(self, experiments: Sequence[Experiment],
                after_each: Optional[Callable[[Experiment, RunResult], None]] = None) -> List[RunResult]:
        """Every experiment, strictly one after another, under the work directory's lock."""
        Path(self.work).mkdir(parents=True, exist_ok=True)
        with open(Path(self.work) / LOCK_FILE, "a") as lock:  # "a": the holder's process id stays until it is ours
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunnerError(f"another runner is using {self.work}; wait for it to finish") from None
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            results = []
            for experiment in experiments:
                self.stop_if_requested(f"before {experiment.name}")
                record = self.recorded(experiment)
                if record is not None:
                    print(f"{experiment.name}: kept (recorded: {record.status}, {record.updates} updates)", flush=True)
                    self.kept.append(experiment.name)
                    continue
                results.append(self.run(experiment))
                if after_each is not None:
                    after_each(experiment, results[-1])
            return results

    def record(self, experiment: Experiment, result: RunResult, directory) -> StudyRecord:
        """DIRECTORY/NAME.json, the compact record of the experiment's RESULT (study_record); an existing record
        of the same fingerprint, updates and translation (a kept experiment) is kept as it is, with the
        machine it was measured on."""
        from .report import machine

        path = Path(directory) / f"{experiment.name}.json"
        if path.is_file():
            kept = StudyRecord.from_json(path.read_text())
            if (kept.fingerprint, kept.updates, kept.translation) == (result.fingerprint, result.updates,
                                                                      result.translation):
                return kept
        run = self.run_dir(experiment)
        record = record_from_log(
            experiment.name, self.flags(experiment), run.log_text(), result.translation, stopped=result.stopped,
            final_model=AVERAGED if run.checkpoint(AVERAGED).is_file() else "", machine=machine(),
            fingerprint=result.fingerprint)
        write_record(record, directory)
        return record


def check_experiments(names) -> Optional[str]:
    """What is wrong with a list of experiments named on a command line, or None."""
    paths = [config_path(name) for name in names]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        return f"no config file {', '.join(missing)}"
    if len({path.stem for path in paths}) != len(paths):
        return "an experiment is named twice"
    return None


def common_update(results: Sequence[RunResult], every) -> Optional[int]:
    """training_log.last_common_validation of the results' curves."""
    return last_common_validation([[point[1] for point in r.curve] for r in results], every)
