"""benchmarks/gradient_fidelity.py on a checkpoint of the tiny model: every mode measured against the reference,
each with the solver settings it names."""
import json
import subprocess
import sys

import pytest

from helpers import REPO, run_cli, script_module, tiny_training_args

pytestmark = pytest.mark.slow  # trains through fairseq-train (the 'slow' marker: tests/conftest.py)
BENCHMARK = REPO / "benchmarks" / "gradient_fidelity.py"


def fidelity(*args):
    proc = subprocess.run([sys.executable, str(BENCHMARK), *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    return proc


def test_every_mode_against_the_reference(reverse_data, tmp_path):
    run_cli("fairseq-train", *tiny_training_args(reverse_data, tmp_path / "ckpt", "--node-encoder", "--node-decoder",
                                                 "--node-rtol", "0.01", "--node-atol", "0.01", "--node-gradient", "adjoint",
                                                 updates=4))
    proc = fidelity(tmp_path / "ckpt" / "checkpoint_last.pt", "--batches", "0", "2", "--max-tokens", "400",
                    "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "gradient_fidelity.json").read_text())
    assert (tmp_path / "out" / "gradient_fidelity.md").read_text() in proc.stdout
    assert sorted({r["batch"] for r in rows}) == [0, 2] and {r["updates"] for r in rows} == {4}
    by_mode = {(r["batch"], r["mode"]): r for r in rows}
    for batch in (0, 2):
        reference = by_mode[batch, "backprop, tol 1e-06 (reference)"]
        own = by_mode[batch, "the run's own"]
        check = by_mode[batch, "backprop, tol 1e-5 (reference check)"]
        # each mode solved with its own settings: the reference's tolerance costs more evaluations, and the
        # reference and its check backprop through the solve whatever the run trained with (here the adjoint)
        assert (own["tolerance"], own["gradient"]) == (0.01, "adjoint")
        tenth = by_mode[batch, "backprop, tol / 10"]
        assert reference["gradient"] == check["gradient"] == tenth["gradient"] == "backprop"
        assert reference["nfe_forward"]["enc"] > own["nfe_forward"]["enc"]
        assert reference["nfe_forward"]["dec"] > own["nfe_forward"]["dec"]
        assert by_mode[batch, "adjoint + seminorm"]["gradient"] == "adjoint + seminorm"
        assert tenth["tolerance"] == pytest.approx(0.001)
        # backprop at the run's tolerance is measured; the adjoint there is the run's own, not measured twice
        assert (by_mode[batch, "backprop"]["tolerance"], by_mode[batch, "backprop"]["gradient"]) == (0.01, "backprop")
        assert (batch, "adjoint") not in by_mode
        for side in ("enc", "dec"):
            assert reference["sides"][side] == pytest.approx({"norm_ratio": 1.0, "cosine": 1.0}, abs=1e-5)
            # two tight tolerances agree: the reference is the ODE's gradient
            assert check["sides"][side]["cosine"] > 0.999
            assert check["sides"][side]["norm_ratio"] == pytest.approx(1.0, abs=1e-2)
            # an untrained tiny model: every mode is close to it (trained models are where they part)
            assert by_mode[batch, "backprop"]["sides"][side]["cosine"] > 0.99
        assert abs(own["loss"] - reference["loss"]) < 0.05
    # a reference solve over its step budget (a stiff model's, whose graph would outgrow the memory): said so
    benchmark = script_module(BENCHMARK)
    benchmark.REFERENCE_MAX_STEPS = 2
    rows = benchmark.measure(tmp_path / "ckpt" / "checkpoint_last.pt", [1], max_tokens=400)
    assert [(r["batch"], r["over_budget"]) for r in rows] == [(1, "the reference went over 2 steps")]
    assert "| 1 | backprop, tol 1e-06 (reference) | backprop, tol 1e-06 | - | - | the reference went over 2 steps |" \
        in benchmark.table(rows).markdown()


def test_a_classic_model_is_refused(reverse_data, tmp_path):
    run_cli("fairseq-train", *tiny_training_args(reverse_data, tmp_path / "ckpt", updates=1))
    proc = fidelity(tmp_path / "ckpt" / "checkpoint_last.pt", "--max-tokens", "400", "--out", tmp_path / "out")
    assert proc.returncode != 0
    assert "a classic model, no ODE block" in proc.stderr
    missing = fidelity(tmp_path / "nothing.pt", "--out", tmp_path / "out")
    assert missing.returncode != 0 and "nothing.pt: no such checkpoint" in missing.stderr
