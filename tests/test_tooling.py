"""The plugin and the tooling apart: what fairseq imports through --user-dir pulls in no tooling, the tools
that read text start without torch or fairseq; the run directory's layout and the runner's keep/resume
decisions, without training."""
import json
import subprocess
import sys

import pytest

from helpers import REPO
from node_experiments.run_dir import RunDir
from node_experiments.runner import (CAP_FLAG, RESULT_FILE, Experiment, Runner, RunResult, Schedule, TimeBudget,
                                     update_cap)
from node_experiments.training_log import Training

LIGHT_TOOLS = ["experiment_config", "training_log", "study_record", "study_conclusions", "run_dir", "runner",
               "report", "scoring", "length_bound", "plot", "odebert_report"]


def imported_after(statement):
    probe = f"import sys; {statement}; print(sorted(m for m in ('torch', 'fairseq', 'node_experiments') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.replace("'", '"'))


@pytest.mark.parametrize("module", LIGHT_TOOLS)
def test_a_tool_that_reads_text_imports_neither_torch_nor_fairseq(module):
    assert imported_after(f"import node_experiments.{module}") == ["node_experiments"]


def test_the_plugin_as_fairseq_imports_it_holds_no_tooling():
    statement = ("import argparse; from fairseq import utils; "
                 f"utils.import_user_module(argparse.Namespace(user_dir={str(REPO / 'node_transformer')!r}))")
    assert imported_after(statement) == ["fairseq", "torch"]


def test_the_config_reader_prints_a_config_at_once(tmp_path):
    config = tmp_path / "c.args"
    config.write_text("--arch transformer  # a comment\n--lr 0.1\n")
    proc = subprocess.run([sys.executable, "-m", "node_experiments.experiment_config", str(config)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.split() == ["--arch", "transformer", "--lr", "0.1"]


def test_the_run_directory_layout(tmp_path):
    run = RunDir(tmp_path / "demo")
    assert run.name == "demo" and run.checkpoints == tmp_path / "demo" / "checkpoints"
    assert run.checkpoint() == run.checkpoints / "checkpoint_best.pt"
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(b"")
    assert run.checkpoint(outside) == outside and run.checkpoint("checkpoint_3_9.pt").parent == run.checkpoints
    assert run.generation("test") == run.gen / "test.txt" and run.log_text() == ""
    with pytest.raises(ValueError, match="never started"):
        run.training()


def _experiment(cap=None):
    return Experiment("x", {"--arch": ["transformer"], "--lr": ["9"]}, cap)


def test_a_schedule_replaces_the_config_and_leaves_the_cap_out_of_the_fingerprint(tmp_path):
    schedule = tmp_path / "schedule.args"
    schedule.write_text("--lr 0.005\n--max-update 8000\n")
    runner = Runner(Schedule(schedule), tmp_path, tmp_path)
    flags = runner.flags(_experiment(cap=3000))
    assert flags == ["--arch", "transformer", "--lr", "0.005", CAP_FLAG, "3000"] and update_cap(flags) == 3000
    assert update_cap(runner.flags(_experiment())) == 8000
    assert runner.fingerprint(flags) == runner.fingerprint(runner.flags(_experiment(cap=5000)))
    timed = Runner(TimeBudget(1, 2), tmp_path, tmp_path)
    assert timed.fingerprint(["--max-update", "1"]) != timed.fingerprint(["--max-update", "2"])
    assert timed.fingerprint([]) != Runner(TimeBudget(2, 2), tmp_path, tmp_path).fingerprint([])


def test_a_finished_result_is_kept_only_for_its_fingerprint_and_cap(tmp_path):
    runner = Runner(TimeBudget(1, 2), tmp_path, tmp_path)
    run = runner.run_dir(_experiment())
    run.path.mkdir()
    result = RunResult.from_training("x", Training.empty(), fingerprint="abc", max_update=0)
    (run.path / RESULT_FILE).write_text(result.to_json())
    assert runner.finished(run, "abc", 0) == result
    assert runner.finished(run, "abd", 0) is None and runner.finished(run, "abc", 5) is None
    assert Runner(TimeBudget(1, 2), tmp_path, tmp_path, keep=False).finished(run, "abc", 0) is None
