"""The compact record a converged-study run leaves in the repository (benchmarks/results/converged/records/
NAME.json): everything the results table, the figures and the notebook read, so that they rebuild on a
fresh clone without the run directories.

A record holds, against updates: the training loss and NFE of every logged interval (fairseq's
train_inner means), the validation loss and NFE, the budget skips; and the run's clean seconds per
update, where it stopped and why, and the translations of its final model. Plain Python and JSON only:
reading a record imports neither torch nor fairseq.
"""
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .experiment_config import flag_value
from .training_log import (BUDGET_SKIPS_KEY, EARLY_STOP_LINE, GNORM_KEY, NFE_KEYS, REGULARISER_KEYS, SESSION_LINE,
                           SKIP_LINE, best_point, final_timeline, inner_rows, training_so_far)
from .yardstick import seconds_in as yardstick_seconds

STOPPED = "stopped"  # a record's status "stopped: REASON"
BUDGET_STOP = "NODETrainingStopped"  # the plugin's error when the solves' step budget ends training
TEST_SETS = ("test2016_flickr", "test2017_flickr", "test2017_mscoco")  # scripts/score.py's names
TRAIN_COLUMNS = ("loss", "nll_loss", "lr", GNORM_KEY, *NFE_KEYS, *REGULARISER_KEYS, BUDGET_SKIPS_KEY)
VALID_COLUMNS = ("loss", "nll_loss", "accuracy", *NFE_KEYS)  # accuracy: sentence prediction


@dataclass
class Curves:
    """Columns against ``updates``: {column: [value or None per update]}."""

    updates: List[int] = field(default_factory=list)
    values: Dict[str, List[Optional[float]]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows, columns):
        """Rows ({"num_updates": u, column: value}) in log order; a row logged again for the same update (a run
        resumed from an earlier checkpoint repeats updates) replaces the earlier one."""
        by_update = {int(row["num_updates"]): row for row in rows if "num_updates" in row}
        updates = sorted(by_update)
        present = [c for c in columns if any(c in by_update[u] for u in updates)]
        return cls(updates, {c: [by_update[u].get(c) for u in updates] for c in present})

    def column(self, name):
        """(updates, values) of one column, where it was logged."""
        pairs = [(u, v) for u, v in zip(self.updates, self.values.get(name, [])) if v is not None]
        return [u for u, _ in pairs], [v for _, v in pairs]


@dataclass
class Session:
    """One fairseq-train call of a run: the update it reached, its clean seconds per update, and the
    yardstick's measured on its machine just before it (node_experiments/yardstick.py; None: not measured)."""

    last_update: int
    seconds_per_update: Optional[float]
    yardstick: Optional[float] = None


def sessions_of(log_text) -> List[Session]:
    """Each training session of a run's log (one per fairseq-train call) that logged an update."""
    found, lines, measured = [], None, None

    def close():
        rows = inner_rows("\n".join(lines or []))
        if rows:
            found.append(Session(int(max(row.get("num_updates", 0) for row in rows)),
                                 clean_seconds_per_update(rows), yardstick))

    yardstick = None
    for line in log_text.splitlines():
        if SESSION_LINE.search(line):
            close()
            lines, yardstick, measured = [], measured, None
        elif (seconds := yardstick_seconds(line)) is not None:
            measured = seconds
        elif lines is not None:
            lines.append(line)
    close()
    return found


@dataclass
class StudyRecord:
    experiment: str
    flags: List[str]
    status: str  # "plateau", "update cap", "training" (unfinished) or "stopped: REASON"
    updates: int
    best_valid_loss: Optional[float]
    best_at_update: Optional[int]  # updates to the plateau: where the best validation loss was reached
    seconds_per_update: Optional[float]  # median over logged intervals: a suspended or shared stretch is an outlier
    train_hours: float
    train: Curves
    valid: Curves
    budget_skips: List[int]  # the updates whose batch was skipped over the solver's step budget
    translation: Dict[str, dict]  # test set name -> scores of the final model, sentences/s
    final_model: str = ""
    machine: str = ""  # where it trained: the context of its seconds per update
    fingerprint: str = ""  # the study runner's key of its flags and budget
    sessions: List[Session] = field(default_factory=list)  # its fairseq-train calls, each on its machine

    @property
    def cost_in_yardstick_updates(self) -> Optional[float]:
        """Its seconds per update over the yardstick's on the same machine, each session weighted by the
        updates it added: a cost that compares across machines. None where a session was not measured."""
        weighted, reached = [], 0
        for session in self.sessions:
            added, reached = session.last_update - reached, max(reached, session.last_update)
            if added <= 0:
                continue  # only repeated updates after a resume: it adds nothing to weigh
            if session.yardstick is None or session.seconds_per_update is None:
                return None
            weighted.append((added, session.seconds_per_update / session.yardstick))
        total = sum(updates for updates, _ in weighted)
        return sum(updates * cost for updates, cost in weighted) / total if total else None

    @property
    def gradient(self) -> str:
        """The NODE blocks' gradient mode, or "-" for a classic model."""
        if not any(flag in self.flags for flag in ("--node-encoder", "--node-decoder")):
            return "-"
        return flag_value(self.flags, "--node-gradient", "adjoint")

    @property
    def stopped(self) -> bool:
        return self.status.startswith(f"{STOPPED}:")

    @property
    def stopped_by_solver_budget(self) -> bool:
        """Whether its solves' step budget ended it (not a NaN or a crash): a run that cannot train on."""
        return self.stopped and BUDGET_STOP in self.status

    @property
    def short_status(self) -> str:
        """The status for a table cell: "stopped" without its reason (stop_reasons lists those)."""
        return STOPPED if self.stopped else self.status

    def finished_as(self, fingerprint, cap) -> bool:
        """Whether this is the record of a run of FINGERPRINT that finished training: on its plateau, on the
        update cap CAP, or on an error that stopped it (a result too)."""
        if self.fingerprint != fingerprint or self.status == "training":
            return False
        return self.status != "update cap" or self.updates == cap

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=None, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        return cls(**{**data, "train": Curves(**data["train"]), "valid": Curves(**data["valid"]),
                      "sessions": [Session(**session) for session in data.get("sessions", [])]})


def status_of(log_text, stopped):
    if stopped:
        return f"{STOPPED}: {stopped}"
    if EARLY_STOP_LINE in log_text:
        return "plateau"
    if "done training in " in log_text:
        return "update cap"
    return "training"


def clean_seconds_per_update(inner):
    """The median of 1/ups over the logged intervals (fairseq's updates per second, each interval's own)."""
    rates = [row["ups"] for row in inner if row.get("ups")]
    return 1 / statistics.median(rates) if rates else None


def record_from_log(experiment, flags, log_text, translation, stopped=None, final_model="", machine="",
                    fingerprint="") -> StudyRecord:
    """The record of a run from its train.log (appended to by every resumed session) and the scores of its
    final model. Updates a later session trained again are read from it alone (final_timeline)."""
    log_text = final_timeline(log_text)
    training = training_so_far(log_text)
    valid_rows = [dict(values, num_updates=point.updates) for values, point in zip(training.valid, training.curve)]
    best = best_point(training.curve)
    return StudyRecord(
        experiment=experiment, flags=list(flags), status=status_of(log_text, stopped),
        updates=training.updates, best_valid_loss=best.loss if best else None,
        best_at_update=best.updates if best else None, seconds_per_update=clean_seconds_per_update(training.inner),
        train_hours=training.train_seconds / 3600,
        train=Curves.from_rows(training.inner, TRAIN_COLUMNS), valid=Curves.from_rows(valid_rows, VALID_COLUMNS),
        budget_skips=sorted({int(u) for u in SKIP_LINE.findall(log_text)}), translation=translation,
        final_model=final_model, machine=machine, fingerprint=fingerprint, sessions=sessions_of(log_text),
    )


def write(record: StudyRecord, directory) -> Path:
    path = Path(directory) / f"{record.experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.to_json())
    return path


def read_all(directory) -> Dict[str, StudyRecord]:
    """{experiment: record} of every record in DIRECTORY."""
    return {path.stem: StudyRecord.from_json(path.read_text()) for path in sorted(Path(directory).glob("*.json"))}



def as_scalars(record: StudyRecord) -> Dict[str, Dict[str, list]]:
    """The record as node_experiments.plot's runs hold TensorBoard scalars, {split: {tag: [(update, seconds,
    value)]}}, the seconds being updates x the clean seconds per update: a converged run trains for hours
    beside other work and suspended, so its wall clock says nothing about what an update costs."""
    per_update = record.seconds_per_update or 0.0
    scalars = {}
    for split, curves in (("train_inner", record.train), ("valid", record.valid)):
        scalars[split] = {}
        for column in curves.values:
            updates, values = curves.column(column)
            scalars[split][column] = [(u, u * per_update, v) for u, v in zip(updates, values)]
    return scalars


def equal_update(records) -> Optional[int]:
    """The last validation every record reached: valid losses there compare learning per update."""
    reached = [max(r.valid.updates) for r in records if r.valid.updates]
    return min(reached) if reached else None


def first_to_last(curves, key) -> Optional[str]:
    """'first→last' of a column's logged values, or None where it was never logged."""
    _, values = curves.column(key)
    return f"{values[0]:.0f}→{values[-1]:.0f}" if values else None


def table_columns_and_rows(records):
    """The converged study's results table: (header, rows), one row per record."""
    at_update = equal_update(records)
    header = ["experiment", "gradient", "status", "updates", "best valid loss (at update)",
              f"valid loss at update {at_update}" if at_update else "valid loss at equal updates", "s/update (clean)",
              "fwd NFE per solve (first→last logged)", "bwd NFE per solve", "budget skips",
              f"BLEU tok ({' / '.join(TEST_SETS)})", "sacreBLEU", "sentences/s (test2016)"]
    rows = []
    for r in records:
        scores = [r.translation.get(name) for name in TEST_SETS]
        best = f"{r.best_valid_loss:.3f} ({r.best_at_update})" if r.best_valid_loss is not None else "-"
        updates, losses = r.valid.column("loss")
        equal = dict(zip(updates, losses)).get(at_update)
        nfe = {direction: ", ".join(f"{side} {cell}" for side in ("enc", "dec")
                                    if (cell := first_to_last(r.train, f"nfe_{side}_{direction}")))
               for direction in ("fwd", "bwd")}
        speed = scores[0].get("sentences_per_second") if scores[0] else None
        rows.append([
            r.experiment, r.gradient, r.short_status, r.updates, best, f"{equal:.3f}" if equal is not None else "-",
            f"{r.seconds_per_update:.2f}" if r.seconds_per_update else "-", nfe["fwd"] or "-", nfe["bwd"] or "-",
            len(r.budget_skips),
            " / ".join(f"{score['tokenized_bleu']:.2f}" if score else "-" for score in scores),
            " / ".join(f"{score['sacrebleu']:.2f}" if score else "-" for score in scores),
            f"{speed:.1f}" if speed else "-"])
    return header, rows


def stop_reasons(records) -> str:
    """Why each stopped run stopped, a Markdown list to go under the table (its status cell says 'stopped')."""
    return "\n".join(f"- {r.experiment} {r.status}" for r in records if r.stopped)


def results_table(records) -> str:
    """The results table of RECORDS in Markdown (the notebook's; scripts/study.sh adds the machine and notes)."""
    header, rows = table_columns_and_rows(records)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    reasons = stop_reasons(records)
    return "\n".join(lines + (["", reasons] if reasons else [])) + "\n"
