"""The ODE BERT comparison's table, from its records alone (benchmarks/odebert.py writes them to
OUT/odebert/records/ and its settings to OUT/odebert.json), so that the table and the notebook's section
rebuild on a fresh clone. Plain Python and JSON: no torch or fairseq at import.

One row per masked-LM config: its pretraining (the same wall time for each, strictly one after another)
and the fine-tuning of its pairs_* twin from the pretraining's best checkpoint (the same updates for each).
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .report import Table
from .study_record import StudyRecord, first_to_last, read_all
from .training_log import NFE_KEYS, last_common_validation

SETTINGS_FILE = "odebert.json"
RECORDS = Path("odebert") / "records"
FIGURES = Path("odebert")


@dataclass
class Settings:
    """What the comparison ran: OUT/odebert.json."""

    minutes: float
    validate_every: int
    finetune_updates: int
    configs: List[str]  # the masked-LM configs, in the table's order
    twins: List[str]  # their fine-tuning configs (pairs_*)

    @property
    def command(self) -> str:
        return (f"python benchmarks/odebert.py --minutes {self.minutes:g} --finetune-updates {self.finetune_updates} "
                f"--validate-every {self.validate_every} {' '.join(self.configs)}")

    def write(self, out):
        (Path(out) / SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, out) -> "Settings":
        path = Path(out) / SETTINGS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ODE BERT comparison there (python benchmarks/odebert.py writes it)")
        return cls(**json.loads(path.read_text()))


def read_records(out) -> Dict[str, StudyRecord]:
    return read_all(Path(out) / RECORDS)


def value_at(record: StudyRecord, column, update) -> Optional[float]:
    updates, values = record.valid.column(column)
    return dict(zip(updates, values)).get(update)


def last_value(record: StudyRecord, column) -> Optional[float]:
    _, values = record.valid.column(column)
    return values[-1] if values else None


def nfe_first_to_last(record: StudyRecord) -> str:
    cells = [f"{key[4:].replace('_', ' ')} {span}" for key in NFE_KEYS if (span := first_to_last(record.train, key))]
    return ", ".join(cells) or "-"


def _best(record: StudyRecord) -> str:
    """The lowest validation loss and where; a small corpus overfits within the budget, so the end can be worse."""
    if record.best_valid_loss is None:
        return "-"
    return f"{record.best_valid_loss:.3f} ({record.best_at_update})"


def _number(value, digits):
    return f"{value:.{digits}f}" if value is not None else "-"


def table(settings: Settings, records: Dict[str, StudyRecord]) -> Table:
    """The comparison's table from its records; a config whose record is missing is named as such."""
    pretrained = [records[name] for name in settings.configs if name in records]
    at_update = last_common_validation([r.valid.updates for r in pretrained], settings.validate_every)
    rows = []
    for name, twin in zip(settings.configs, settings.twins):
        record, tuned = records.get(name), records.get(twin)
        if record is None:
            rows.append([name, "no record"] + ["-"] * 7)
            continue
        stopped = f" ({record.status})" if record.stopped else ""
        accuracy = last_value(tuned, "accuracy") if tuned else None
        rows.append([name + stopped, record.updates, _number(record.seconds_per_update, 2),
                     _number(value_at(record, "loss", at_update), 3), _number(last_value(record, "loss"), 3),
                     _best(record), nfe_first_to_last(record), tuned.updates if tuned else "-", _number(accuracy, 1)])
    return Table(
        "odebert", f"The ODE BERT: {settings.minutes:g} minutes of masked-LM pretraining each, then "
                   f"{settings.finetune_updates} updates of fine-tuning, Multi30k EN+DE",
        ["config", "pretraining updates", "s/update", f"MLM valid loss at update {at_update or '-'} (equal updates)",
         "MLM valid loss at the end (equal time)", "best MLM valid loss (at update)",
         "NFE per solve (first→last logged)", "fine-tuning updates",
         "pairs valid accuracy (%)"], rows,
        note=f"Command: {settings.command}; rebuilt from {RECORDS}/ with --report. MLM loss is fairseq's "
             f"masked_lm criterion (base 2), validated every {settings.validate_every} updates and at the end of "
             "the time budget; s/update is the median over the logged intervals of fairseq's own updates per "
             "second; NFE are train_inner means; accuracy is the fine-tuning's last validation (is the German "
             "caption the English one's translation, half the pairs shuffled: chance is 50%).",
        machine="; ".join(sorted({r.machine for r in records.values() if r.machine})) or "not recorded")
