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


@pytest.fixture(scope="module")
def adjoint_checkpoint(reverse_data, tmp_path_factory):
    """The tiny full NODE after 4 updates with the adjoint at tolerance 1e-2."""
    save_dir = tmp_path_factory.mktemp("fidelity") / "ckpt"
    run_cli("fairseq-train", *tiny_training_args(reverse_data, save_dir, "--node-encoder", "--node-decoder",
                                                 "--node-rtol", "0.01", "--node-atol", "0.01", "--node-gradient", "adjoint",
                                                 updates=4))
    return save_dir / "checkpoint_last.pt"


def test_every_mode_against_the_reference(adjoint_checkpoint, tmp_path):
    proc = fidelity(adjoint_checkpoint, "--batches", "0", "2", "--max-tokens", "400", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "gradient_fidelity.json").read_text())
    assert (tmp_path / "out" / "gradient_fidelity.md").read_text() in proc.stdout
    assert sorted({r["batch"] for r in rows}) == [0, 2] and {r["updates"] for r in rows} == {4}
    by_mode = {(r["batch"], r["mode"]): r for r in rows}
    for batch in (0, 2):
        reference = by_mode[batch, "backprop, tol 1e-06 (reference)"]
        own = by_mode[batch, "the run's own"]
        check = by_mode[batch, "backprop, tol 1e-05 (reference check)"]
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


def test_the_adjoint_takes_over_a_reference_over_its_budget(adjoint_checkpoint):
    """Backprop's reference over its steps (a stiff model's, whose graph would outgrow the memory): the adjoint at
    the same tolerance is the reference, and it is the same gradient; over both, the batch is reported without."""
    benchmark = script_module(BENCHMARK)
    by_backprop = benchmark.measure(adjoint_checkpoint, [1], max_tokens=400)
    by_adjoint = benchmark.measure(adjoint_checkpoint, [1], max_tokens=400,
                                   budgets=benchmark.StepBudgets(backprop=1, adjoint_reference=1000))
    modes = [r["mode"] for r in by_adjoint]
    assert modes[0] == "adjoint, tol 1e-06 (reference)" and modes[-1] == "adjoint, tol 1e-05 (reference check)"
    assert not any(m.startswith("backprop, tol 1e-0") for m in modes)
    reference = by_adjoint[0]
    assert (reference["gradient"], reference["tolerance"]) == ("adjoint", 1e-6)
    # the other rows are measured against the adjoint's reference as against backprop's: the same gradient, to
    # the agreement of two tight tolerances in float32 (as the reference check's)
    for mode in ("the run's own", "adjoint + seminorm"):
        [against_backprop] = [r for r in by_backprop if r["mode"] == mode]
        [against_adjoint] = [r for r in by_adjoint if r["mode"] == mode]
        for side in ("enc", "dec"):
            assert against_adjoint["sides"][side] == pytest.approx(against_backprop["sides"][side], abs=1e-2)
    for side in ("enc", "dec"):
        assert by_adjoint[-1]["sides"][side]["cosine"] > 0.999
    # every backprop solve is held to the steps that fit the memory (at 1e-2 the tiny model takes 2), the
    # adjoint's are not
    held = {r["mode"]: r for r in by_adjoint}
    for mode in ("backprop", "backprop, tol / 10"):
        assert held[mode]["over_budget"] == "over its step budget (1 steps)"
    assert {"the run's own", "adjoint + seminorm", "adjoint, tol 1e-05 (reference check)"} <= \
        {mode for mode, r in held.items() if "sides" in r}
    rows = benchmark.measure(adjoint_checkpoint, [1], max_tokens=400,
                             budgets=benchmark.StepBudgets(backprop=2, adjoint_reference=3))
    said = "the reference went over its step budget (backprop 2 steps, adjoint 3 steps)"
    assert [(r["batch"], r["over_budget"]) for r in rows] == [(1, said)]
    assert f"| 1 | adjoint, tol 1e-06 (reference) | adjoint, tol 1e-06 | - | - | {said} |" \
        in benchmark.table(rows).markdown()


def test_a_classic_model_is_refused(reverse_data, tmp_path):
    run_cli("fairseq-train", *tiny_training_args(reverse_data, tmp_path / "ckpt", updates=1))
    proc = fidelity(tmp_path / "ckpt" / "checkpoint_last.pt", "--max-tokens", "400", "--out", tmp_path / "out")
    assert proc.returncode != 0
    assert "a classic model, no ODE block" in proc.stderr
    missing = fidelity(tmp_path / "nothing.pt", "--out", tmp_path / "out")
    no_steps = fidelity(tmp_path / "nothing.pt", "--backprop-max-steps", "0")
    assert no_steps.returncode == 2 and "--backprop-max-steps: a step budget is at least 1, got 0" in no_steps.stderr
    assert missing.returncode != 0 and "nothing.pt: no such checkpoint" in missing.stderr
