"""A converged run's compact record: read from its resumed log, kept as JSON, drawn and tabled without the
run directory."""
import json
import subprocess
import sys

import pytest

from helpers import REPO, study_script
from node_experiments import study_record
from node_experiments.study_record import StudyRecord, as_scalars, read_all, record_from_log
from node_experiments.training_log import EARLY_STOP_LINE
from test_training_log import SESSION

DONE = "2026-11-25 10:02:03 | INFO | fairseq_cli.train | done training in 122 seconds\n"
NODE_FLAGS = ["--arch", "node_transformer", "--node-decoder", "--node-gradient", "backprop"]
SCORES = {"test2016_flickr": {"tokenized_bleu": 38.5, "sacrebleu": 37.25, "sentences_per_second": 12.5},
          "test2017_flickr": {"tokenized_bleu": 31.0, "sacrebleu": 30.5, "sentences_per_second": 11.0}}


def resumed_log(tail=""):
    """Two sessions; the second resumed from the checkpoint of update 100 and logs update 100 again. The
    first session's second interval was suspended (fairseq's ups counts the pause)."""
    first = SESSION.format(day="2026-11-24", skip=7, nfe_first=14, nfe_last=15, inner=50, valid=60, loss=7.5,
                           last=100).replace("wall=60", "ups=0.5, wall=60").replace("wall=120", "ups=0.01, wall=120")
    second = SESSION.format(day="2026-11-25", skip=130, nfe_first=16, nfe_last=18, inner=100, valid=160, loss=6.5,
                            last=200).replace("wall=60", "ups=0.4, wall=60").replace("wall=120", "ups=0.45, wall=120")
    return first + second + tail


def test_a_resumed_run_makes_one_record_with_its_curves_and_clean_speed():
    record = record_from_log("node_x", NODE_FLAGS, resumed_log(DONE), SCORES, machine="cpu", fingerprint="abc")
    assert record.status == "update cap" and record.updates == 200 and record.gradient == "backprop"
    assert (record.best_valid_loss, record.best_at_update) == (6.5, 160)
    assert record.budget_skips == [7, 130]
    # the median of 1/ups: the suspended interval (0.01 updates/s) moves it by one rank, not by 50x
    assert record.seconds_per_update == pytest.approx(1 / 0.425)
    assert record.train.column("nfe_dec_fwd") == ([50, 100, 200], [14.0, 16.0, 18.0])  # update 100 as resumed
    assert record.train.column("nfe_dec_bwd") == ([50, 100], [20.0, 20.0])
    assert record.train.column("node_kinetic_dec") == ([50, 100], [2.3e6, 2.3e6])
    # fairseq's gradient norm (inf where it overflowed), kept through the JSON record
    assert record.train.column("gnorm") == ([50, 100], [float("inf")] * 2)
    assert StudyRecord.from_json(record.to_json()).train.column("gnorm") == ([50, 100], [float("inf")] * 2)
    assert record.valid.column("loss") == ([60, 160], [7.5, 6.5])
    assert record.valid.column("nll_loss") == ([60, 160], [6.1, 6.1])
    assert StudyRecord.from_json(record.to_json()) == record

    scalars = as_scalars(record)
    assert scalars["valid"]["loss"] == [(60, pytest.approx(60 / 0.425), 7.5), (160, pytest.approx(160 / 0.425), 6.5)]
    assert [point[0] for point in scalars["train_inner"]["loss"]] == [50, 100, 200]


def test_updates_a_later_session_trained_again_are_read_from_it_alone():
    """A third session resumed from the checkpoint of update 100 again (the second's machine was lost with
    its checkpoints): what the second logged past update 100 (progress, a validation, a skipped batch) is
    not in the record; its update 100, from the same checkpoint, is."""
    def resumed_from(update, session):
        first, rest = session.split("\n", 1)
        return (f"{first}\n{first[:19]} | INFO | fairseq.trainer | Loaded checkpoint /run/checkpoints/checkpoint_last.pt "
                f"(epoch 2 @ {update} updates) (0 seconds)\n{rest}")

    third = SESSION.format(day="2026-11-26", skip=120, nfe_first=30, nfe_last=31, inner=120, valid=140, loss=6.9,
                           last=150)
    log = resumed_log().split("2026-11-25 10:00:00", 1)
    log = log[0] + resumed_from(100, "2026-11-25 10:00:00" + log[1]) + resumed_from(100, third)
    record = record_from_log("node_x", NODE_FLAGS, log, {})
    assert record.updates == 150 and record.budget_skips == [7, 120]
    assert record.valid.column("loss") == ([60, 140], [7.5, 6.9])
    assert record.train.column("nfe_dec_fwd") == ([50, 100, 120, 150], [14.0, 16.0, 30.0, 31.0])
    assert [session.last_update for session in record.sessions] == [100, 100, 150]
    # without the third session the second one's updates stand
    assert record_from_log("node_x", NODE_FLAGS, resumed_log(), {}).budget_skips == [7, 130]


@pytest.mark.parametrize("tail, stopped, status", [
    (f"2026-11-25 10:02:02 | INFO | fairseq_cli.train | {EARLY_STOP_LINE} for last 5 runs\n" + DONE, None, "plateau"),
    ("", None, "training"),
    ("", "SolverBudgetExceeded: 2 consecutive batches", "stopped: SolverBudgetExceeded: 2 consecutive batches"),
])
def test_the_status_says_why_a_run_ended(tail, stopped, status):
    assert record_from_log("x", [], resumed_log(tail), {}, stopped=stopped).status == status


def test_gradient_mode_of_classic_node_and_default_runs():
    assert record_from_log("x", ["--arch", "transformer"], resumed_log(), {}).gradient == "-"
    assert record_from_log("x", ["--node-encoder"], resumed_log(), {}).gradient == "adjoint"


def test_a_run_that_never_trained_has_an_empty_record():
    record = record_from_log("x", [], "2026-11-24 10:00:00 | INFO | fairseq_cli.train | training on 1 devices\n", {},
                             stopped="RuntimeError: out of memory")
    assert record.updates == 0 and record.best_valid_loss is None and record.train.updates == []
    assert record.seconds_per_update is None and record.status == "stopped: RuntimeError: out of memory"


def report(out, *names):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "study.py"), "--report", "--out", str(out), *names],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_the_report_draws_a_sections_figures_over_in_place_and_drops_the_rest(tmp_path, monkeypatch):
    from node_experiments import plot

    record = record_from_log("node_separated_aug1", NODE_FLAGS, resumed_log(DONE), SCORES)
    section = tmp_path / "figures" / "time_dependence"  # node_separated_aug1 against its timedep ablation
    section.mkdir(parents=True)
    (section / "loss.png").write_bytes(b"old figure")
    (section / "retired_figure.png").write_bytes(b"a figure this report no longer draws")
    there_while_drawn = {}
    draw = plot.plot_scalars

    def spying_plot_scalars(runs, out, formats):
        there_while_drawn[out.name] = sorted(p.name for p in out.glob("*"))
        return draw(runs, out, formats)

    monkeypatch.setattr(plot, "plot_scalars", spying_plot_scalars)
    study_script().write_converged_report([record], tmp_path)
    # A commit beside a runner's rebuild finds the section's figures, old or new, never none.
    assert there_while_drawn["time_dependence"] == ["loss.png", "retired_figure.png"]
    assert (section / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in section.iterdir()) == sorted(
        p.name for p in (tmp_path / "figures" / "weight_decay").iterdir())  # the same runs, the same figures
    assert not (section / "retired_figure.png").exists()


def test_the_report_rebuilds_table_and_figures_from_records_alone(tmp_path):
    node = record_from_log("node_x", NODE_FLAGS, resumed_log(DONE), SCORES, machine="cpu A")
    reason = "NODETrainingStopped: 10 consecutive batches exceeded the solver budget, last at update 200"
    classic = record_from_log("classic_y", ["--arch", "transformer"], resumed_log(DONE).replace("nfe_dec_", "x_"),
                              {}, stopped=reason, machine="cpu A")
    for record in (node, classic):
        study_record.write(record, tmp_path / "records")
    assert read_all(tmp_path / "records") == {"classic_y": classic, "node_x": node}

    stale = tmp_path / "figures" / "tolerance" / "loss.png"  # drawn before its section's runs changed
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old figure")
    proc = report(tmp_path)  # no run directories, no data
    assert proc.returncode == 0, proc.stderr
    assert not stale.parent.exists()  # no record of the section's runs here: no figure of them either
    table = (tmp_path / "study.md").read_text()
    assert "Machine: cpu A" in table and "valid loss at update 160" in table
    row = next(line for line in table.splitlines() if line.startswith("| node_x |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:9] == ["node_x", "backprop", "update cap", "200", "6.500 (160)", "6.500", f"{1 / 0.425:.2f}",
                         "dec 14→18", "dec 20→20"]
    assert cells[9:] == ["2", "38.50 / 31.00 / -", "37.25 / 30.50 / -", "12.5"]
    assert "| classic_y | - | stopped | 200 |" in table  # and why, under the table:
    assert table.split("\n\n")[-1] == f"- classic_y stopped: {reason}\n"
    for figure in ("loss", "best_valid_loss_vs_updates", "best_valid_loss_vs_hours", "nfe", "regularisers"):
        assert (tmp_path / "figures" / f"{figure}.png").stat().st_size > 0

    conclusions = (tmp_path / "conclusions.md").read_text()
    assert conclusions.count("**not testable yet**") == len(conclusions.splitlines()) - 6  # no study experiment here

    proc = report(tmp_path, "node_x", "missing_z")
    assert proc.returncode == 2 and "no record missing_z.json" in proc.stderr
    empty = tmp_path / "empty"
    proc = report(empty)
    assert proc.returncode == 2 and "no record *.json" in proc.stderr
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "study.py"), "--report", "--minutes", "1"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "not allowed with --minutes" in proc.stderr
    assert json.loads((tmp_path / "records" / "node_x.json").read_text())["experiment"] == "node_x"


def test_the_gpu_check_sets_its_runs_beside_the_cpu_records():
    sys.path.insert(0, str(REPO / "scripts"))
    from gpu_check import comparison_rows

    cpu = record_from_log("node_x", NODE_FLAGS, resumed_log(DONE), {})
    gpu = StudyRecord.from_json(cpu.to_json())
    gpu.seconds_per_update = cpu.seconds_per_update / 8
    gpu.valid.values["loss"] = [7.25, 6.75]
    alone = record_from_log("new_y", NODE_FLAGS, resumed_log(DONE), {})
    rows = comparison_rows({"node_x": gpu, "new_y": alone}, {"node_x": cpu})
    assert rows[0] == ["node_x", f"{gpu.seconds_per_update:.3f}", f"{cpu.seconds_per_update:.3f}", "8.0x",
                       "60: 7.250 / 7.500, 160: 6.750 / 6.500"]
    assert rows[1][2:] == ["-", "-", "-"]
    if not __import__("torch").cuda.is_available():
        proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--updates", "2"], capture_output=True,
                              text=True, cwd=REPO, timeout=120)
        assert proc.returncode == 2 and "no CUDA device here" in proc.stderr and "--allow-cpu" in proc.stderr


def yardstick_line(seconds):
    return f"2026-11-24 09:59:00 | INFO | node_experiments.yardstick | transformer_1layer {seconds} s/update on this machine\n"


def test_each_session_keeps_its_machines_yardstick_and_the_cost_compares_across_machines():
    """A run resumed on a machine four times as slow (by its yardstick), where its seconds per update only
    doubled: its cost in yardstick updates halves there, and each session weighs by the updates it added."""
    def session(day, last, ups, skip):
        return SESSION.format(day=day, skip=skip, nfe_first=14, nfe_last=15, inner=last - 50, valid=last - 40,
                              loss=7.0, last=last).replace("wall=60", f"ups={ups}, wall=60").replace(
                                  "wall=120", f"ups={ups}, wall=120")

    log = yardstick_line(1.0) + session("2026-11-24", 100, 0.5, 7) + yardstick_line(4.0) + \
        session("2026-11-25", 300, 0.25, 130)
    record = record_from_log("node_x", NODE_FLAGS, log, {})
    assert record.sessions == [study_record.Session(100, 2.0, 1.0), study_record.Session(300, 4.0, 4.0)]
    assert record.cost_in_yardstick_updates == pytest.approx((100 * 2.0 + 200 * 1.0) / 300)
    repeated = record_from_log("node_x", NODE_FLAGS, log + session("2026-11-26", 300, 0.1, 300), {})
    assert repeated.sessions[-1].yardstick is None  # unmeasured, but it only repeated updates: nothing to weigh
    assert repeated.cost_in_yardstick_updates == record.cost_in_yardstick_updates
    assert StudyRecord.from_json(record.to_json()) == record
    unmeasured = record_from_log("node_x", NODE_FLAGS, session("2026-11-24", 100, 0.5, 7) + yardstick_line(4.0)
                                 + session("2026-11-25", 300, 0.25, 130), {})
    assert [s.yardstick for s in unmeasured.sessions] == [None, 4.0] and unmeasured.cost_in_yardstick_updates is None
    old = json.loads(record.to_json())
    del old["sessions"]  # a record written before sessions were kept
    assert StudyRecord.from_json(json.dumps(old)).cost_in_yardstick_updates is None
