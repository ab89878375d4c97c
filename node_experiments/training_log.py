"""Reading fairseq's simple-format training logs and fairseq-generate's speed line: what the equal-time
benchmarks and the study runner report from a run."""
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Dict, List, NamedTuple, Optional, Tuple

TIMESTAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
VALID_LINE = re.compile(TIMESTAMP + r".*valid on 'valid' subset \| loss ([\d.]+) .*\| num_updates (\d+)")
START_LINE = re.compile(TIMESTAMP + r".*(?:begin training|Start iterating over samples)")
SESSION_LINE = re.compile(r"fairseq_cli\.train \| training on ")  # once per fairseq-train invocation
LOADED_LINE = re.compile(r"Loaded checkpoint .* \(epoch \d+ @ (\d+) updates\)")  # where a session resumed
TRAIN_INNER = re.compile(r"train_inner \| (.*)")
DONE_LINE = re.compile(r"done training in ([\d.]+) seconds")
SKIP_LINE = re.compile(r"skipping batch at update (\d+)")  # node_policies' warning for a skipped batch
UPDATE_OF_LINE = re.compile(rf"num_updates[= ](\d+)|{SKIP_LINE.pattern}")  # the update a line logs
EARLY_STOP_LINE = "early stop since valid performance hasn't improved"  # fairseq's --patience
ERROR_LINE = re.compile(r"\b\w*(?:Error|Stopped|Exception|error)\b: .*")  # what a Python traceback ends on
ERROR_CHARACTERS = 300  # an error quoted in a record or table: its first line, at most this long
TRANSLATED = re.compile(r"Translated ([\d,]+) sentences .* in ([\d.]+)s \(([\d.]+) sentences/s")
NFE_KEYS = ("nfe_enc_fwd", "nfe_enc_bwd", "nfe_dec_fwd", "nfe_dec_bwd")
REGULARISER_KEYS = ("node_kinetic_enc", "node_jacobian_enc", "node_kinetic_dec", "node_jacobian_dec")
BUDGET_SKIPS_KEY = "node_budget_skips"  # the batches skipped over the step budget in a logged interval
GNORM_KEY = "gnorm"  # fairseq's gradient norm before --clip-norm clips it, logged by every training
_STAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def final_timeline(log_text) -> str:
    """A log appended to by resumed sessions, as the run's final timeline. A session that resumed from a
    checkpoint older than what the sessions before it logged (their later updates lost with their machine)
    trains those updates again: what the earlier sessions logged past that checkpoint (progress lines,
    validations, skipped batches) is dropped, and every other line kept."""
    lines = log_text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if SESSION_LINE.search(line)]
    sessions = [lines[first:end] for first, end in zip([0] + starts, starts + [len(lines)])]
    kept, ceiling = [], float("inf")  # ceiling: the oldest checkpoint a later session resumed from
    for session in reversed(sessions):
        kept.append([line for line in session if (update := _update_of(line)) is None or update <= ceiling])
        resumed = [int(match[1]) for match in map(LOADED_LINE.search, session) if match]
        if resumed:
            ceiling = min(ceiling, resumed[0])
    return "".join(line for session in reversed(kept) for line in session)


def _update_of(line) -> Optional[int]:
    match = UPDATE_OF_LINE.search(line)
    return int(match[1] or match[2]) if match else None


def last_error(text) -> Optional[str]:
    """The error a fairseq command's log (or stderr) ends on, from its last 200 lines, or None; at most
    ERROR_CHARACTERS long, a cut one ending in '...'."""
    for line in reversed(text.splitlines()[-200:]):
        match = ERROR_LINE.search(line)
        if match:
            error = match[0]
            return error if len(error) <= ERROR_CHARACTERS else error[:ERROR_CHARACTERS - 3] + "..."
    return None


_NUMBER = r"-?(?:[\d.]+(?:[eE][-+]?\d+)?|inf|nan)"


def _values(text, separator):
    return {key: float(value) for key, value in re.findall(rf"([a-z_]+){separator}({_NUMBER})\b", text)}


def inner_rows(log_text):
    """The train_inner lines as dicts ({"num_updates": 50.0, "nfe_dec_fwd": 14.0, ...}), in order."""
    return [_values(m[1], "=") for m in map(TRAIN_INNER.search, log_text.splitlines()) if m]


def _stamp(match):
    return datetime.strptime(match[1], _STAMP_FORMAT)


class ValidPoint(NamedTuple):
    """One validation: when (seconds of training), after how many updates, and the loss. A tuple, so that
    a curve in JSON stays a list of [seconds, updates, loss]."""

    seconds: float
    updates: int
    loss: float


@dataclass
class Training:
    """What a run's log says it did."""

    updates: int
    train_seconds: float
    curve: List[ValidPoint]  # every validation, in order
    nfe: Dict[str, Tuple[float, float]]  # {NFE key: (first, last) logged train_inner value}
    inner: List[Dict[str, float]]  # the train_inner rows
    valid: List[Dict[str, float]]  # the validation lines' values, NFE included, one per curve point
    budget_skips: int  # batches skipped over the solver's step budget

    @classmethod
    def empty(cls):
        """A run stopped before training began."""
        return cls(updates=0, train_seconds=0.0, curve=[], nfe={}, inner=[], valid=[], budget_skips=0)

    @property
    def seconds_per_update(self) -> float:
        return self.train_seconds / max(self.updates, 1)


def read_training(log_text) -> Training:
    """What a run did (Training); ValueError if it never began training.

    A log appended to by resumed sessions counts each session's time once: a session lasts until its
    "done training" line or, if it was cut off, its last time stamp, and the curve's seconds go on from
    the sessions before. Updates a later session trained again are read from it alone (final_timeline)."""
    log_text = final_timeline(log_text)
    lines = log_text.splitlines()
    boundaries = [i for i, line in enumerate(lines) if SESSION_LINE.search(line)] or [0]
    curve, elapsed, trained = [], 0.0, False
    for first, end in zip(boundaries, boundaries[1:] + [len(lines)]):
        session = lines[first:end]
        starts = [match for match in map(START_LINE.match, session) if match]
        if not starts:
            continue
        trained, start = True, _stamp(starts[0])
        for match in map(VALID_LINE.match, session):
            if match:
                curve.append(ValidPoint(elapsed + (_stamp(match) - start).total_seconds(), int(match[3]), float(match[2])))
        done = [match for match in map(DONE_LINE.search, session) if match]
        stamps = [match for match in (re.match(TIMESTAMP, line) for line in session) if match]
        elapsed += float(done[-1][1]) if done else (_stamp(stamps[-1]) - start).total_seconds()
    if not trained:
        raise ValueError("no 'begin training' line: training never started (see the log)")
    inner = inner_rows(log_text)
    updates = int(max([row.get("num_updates", 0) for row in inner] + [u for _, u, _ in curve] + [0]))
    nfe = {}
    for key in NFE_KEYS:
        values = [row[key] for row in inner if key in row]
        if values:
            nfe[key] = (values[0], values[-1])
    valid = [_values(line.split("valid on 'valid' subset", 1)[1], " ") for line in lines if VALID_LINE.match(line)]
    return Training(updates=updates, train_seconds=elapsed, curve=curve, nfe=nfe, inner=inner, valid=valid,
                    budget_skips=len(SKIP_LINE.findall(log_text)))


def training_so_far(log_text) -> Training:
    """read_training, or Training.empty() for a log of a run that has not begun training (or no log)."""
    try:
        return read_training(log_text)
    except ValueError:
        return Training.empty()


def last_session(log_text):
    """The log of a run's last fairseq-train call (a resumed run's log holds one per call)."""
    return SESSION_LINE.split(log_text)[-1]


def best_point(curve) -> Optional[ValidPoint]:
    """The validation of the lowest loss, or None."""
    return ValidPoint(*min(curve, key=lambda point: point[2])) if curve else None


def last_common_validation(validated_updates, every) -> Optional[int]:
    """The last validation every run reached (updates, a multiple of ``every``), from each run's validated
    updates: losses there compare what the runs learnt per update, whatever an update cost. A run too slow
    to reach its first such validation is left out (its cell stays empty); None when no run reached one."""
    reached = [max((u for u in updates if u % every == 0), default=0) for updates in validated_updates]
    return min((u for u in reached if u > 0), default=None)


def loss_at_update(curve, update):
    """The validation loss logged at exactly ``update`` updates, or None."""
    return next((point.loss for point in map(ValidPoint._make, curve) if point.updates == update), None)


def time_to_reach(curve, loss):
    """Seconds until a validation loss <= ``loss``, interpolated between validations; None if never."""
    previous = (0.0, float("inf"))
    for seconds, _, value in map(ValidPoint._make, curve):
        if value <= loss:
            before_s, before_loss = previous
            if before_loss == float("inf"):
                return seconds
            return before_s + (seconds - before_s) * (before_loss - loss) / (before_loss - value)
        previous = (seconds, value)
    return None


class Translated(NamedTuple):
    """What fairseq-generate says it translated: sentences, the seconds generation took, and their ratio."""
    sentences: int
    seconds: float
    sentences_per_second: float


def translations(generate_stderr) -> List[Translated]:
    """fairseq-generate's 'Translated ...' lines, one per subset translated, in order."""
    return [Translated(int(m[1].replace(",", "")), float(m[2]), float(m[3]))
            for m in TRANSLATED.finditer(generate_stderr)]


def translation_speeds(generate_stderr):
    """fairseq-generate's sentences per second, one per subset translated, in order."""
    return [translated.sentences_per_second for translated in translations(generate_stderr)]
