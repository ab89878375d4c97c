"""The ODE BERT comparison's table and figures rebuilt from its records alone (benchmarks/odebert.py --report)."""
import subprocess
import sys

from helpers import REPO
from node_experiments import odebert_report as report
from node_experiments.study_record import Curves, StudyRecord, write


def record(name, valid, train=None, status="training", seconds_per_update=1.0):
    """VALID: {update: {column: value}}; TRAIN: {update: {column: value}} (train_inner rows)."""
    def curves(rows):
        updates = sorted(rows)
        columns = sorted({c for row in rows.values() for c in row})
        return Curves(updates, {c: [rows[u].get(c) for u in updates] for c in columns})

    best_at = min((u for u in valid if "loss" in valid[u]), key=lambda u: valid[u]["loss"])
    return StudyRecord(experiment=name, flags=[], status=status, updates=max(valid), best_valid_loss=valid[best_at]["loss"],
                       best_at_update=best_at, seconds_per_update=seconds_per_update, train_hours=0.1,
                       train=curves(train or {}), valid=curves(valid), budget_skips=[], translation={},
                       machine="test machine")


SETTINGS = report.Settings(minutes=15, validate_every=100, finetune_updates=600,
                           configs=["mlm_node_tiny", "mlm_roberta_1layer", "mlm_roberta_tiny"],
                           twins=["pairs_node_tiny", "pairs_roberta_1layer", "pairs_roberta_tiny"])


def records():
    node = record("mlm_node_tiny", {100: {"loss": 9.5}, 200: {"loss": 8.25}, 247: {"loss": 8.0}},
                  train={20: {"loss": 12.0, "nfe_enc_fwd": 14.0, "nfe_enc_bwd": 20.0},
                         240: {"loss": 8.1, "nfe_enc_fwd": 20.0, "nfe_enc_bwd": 26.4}}, seconds_per_update=3.6)
    classic = record("mlm_roberta_1layer", {u: {"loss": 10 - u / 500} for u in range(100, 2001, 100)} | {2033: {"loss": 5.9}},
                     train={20: {"loss": 12.0}}, seconds_per_update=0.44)
    return {r.experiment: r for r in (
        node, classic, record("pairs_node_tiny", {600: {"loss": 0.8, "accuracy": 71.25}}),
        record("pairs_roberta_1layer", {600: {"loss": 0.7, "accuracy": 80.0}}))}


def rows_by_config(table):
    return {row[0]: row for row in table.rows}


def test_the_table_compares_at_the_last_validation_every_run_reached_and_at_the_end():
    table = report.table(SETTINGS, records())
    assert "MLM valid loss at update 200 (equal updates)" in table.header
    rows = rows_by_config(table)
    assert rows["mlm_node_tiny"] == ["mlm_node_tiny", 247, "3.60", "8.250", "8.000", "8.000 (247)",
                                     "enc fwd 14→20, enc bwd 20→26", 600, "71.2"]
    assert rows["mlm_roberta_1layer"][1:5] == [2033, "0.44", "9.600", "5.900"]
    assert rows["mlm_roberta_1layer"][5:] == ["5.900 (2033)", "-", 600, "80.0"]
    assert rows["mlm_roberta_tiny"][:2] == ["mlm_roberta_tiny", "no record"]  # missing, and named so
    assert "--minutes 15 --finetune-updates 600" in table.note and table.machine == "test machine"


def test_a_run_short_of_its_first_validation_leaves_its_cell_empty_not_the_column():
    runs = records()
    runs["mlm_roberta_tiny"] = record("mlm_roberta_tiny", {60: {"loss": 11.0}}, status="stopped: diverged")
    rows = rows_by_config(report.table(SETTINGS, runs))
    assert rows["mlm_node_tiny"][3] == "8.250"
    assert rows["mlm_roberta_tiny (stopped: diverged)"][3:5] == ["-", "11.000"]


def test_report_rebuilds_the_table_and_figures_from_the_records_alone(tmp_path):
    out = tmp_path / "results"
    for r in records().values():
        write(r, out / report.RECORDS)
    SETTINGS.write(out)
    assert report.Settings.read(out) == SETTINGS
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "odebert.py"), "--report", "--out", out],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "odebert.md").read_text()
    assert "| mlm_node_tiny | 247 | 3.60 | 8.250 | 8.000 |" in text and text in proc.stdout
    figures = {p.stem for p in (out / report.FIGURES).glob("*.png")}
    assert {"loss", "nfe", "best_valid_loss_vs_updates", "best_valid_loss_vs_hours"} <= figures


def test_report_without_a_comparison_names_the_missing_file(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "odebert.py"), "--report", "--out", tmp_path],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and f"{tmp_path / 'odebert.json'}: no ODE BERT comparison there" in proc.stderr
