"""A converged run's final model: the mean of its last interval checkpoints, weights only, loaded safely."""
import pickle

import pytest
import torch

from helpers import run_cli
from node_experiments.averaging import AveragingError, average_checkpoints, average_last, interval_checkpoints


def save_checkpoint(path, scale, extra=None):
    torch.save({"cfg": {"model": {"arch": "test"}},
                "model": {"weight": torch.full((2, 3), float(scale)), "steps": torch.tensor([int(scale)])},
                "last_optimizer_state": {"state": {0: torch.ones(3)}}, "extra_state": {"update": scale},
                **(extra or {})}, path)
    return path


def test_the_newest_interval_checkpoints_are_averaged_in_float64_without_optimiser_state(tmp_path):
    for update, scale in ((200, 1.0), (400, 2.0), (1000, 4.0), (600, 1e-8)):
        save_checkpoint(tmp_path / f"checkpoint_{update // 100}_{update}.pt", scale)
    save_checkpoint(tmp_path / "checkpoint_best.pt", 100.0)  # not an interval checkpoint
    save_checkpoint(tmp_path / "checkpoint_last.pt", 100.0)
    assert [p.name for p in interval_checkpoints(tmp_path)] == [
        "checkpoint_2_200.pt", "checkpoint_4_400.pt", "checkpoint_6_600.pt", "checkpoint_10_1000.pt"]

    out = tmp_path / "averaged" / "checkpoint_averaged.pt"
    names = average_last(tmp_path, 3, out)
    assert names == ["checkpoint_4_400.pt", "checkpoint_6_600.pt", "checkpoint_10_1000.pt"]
    averaged = torch.load(out)
    assert averaged["model"]["weight"].dtype == torch.float32
    assert torch.equal(averaged["model"]["weight"], torch.full((2, 3), (2.0 + 1e-8 + 4.0) / 3))
    assert averaged["model"]["steps"].dtype == torch.int64 and averaged["model"]["steps"].item() == 2  # (2+0+4)/3
    assert "last_optimizer_state" not in averaged
    assert averaged["extra_state"] == {"update": 4.0}  # the newest checkpoint's records
    assert averaged["averaged_checkpoints"] == names
    assert not list(out.parent.glob("*.part"))


def test_tied_weights_stay_tied_so_the_average_is_as_small_as_a_checkpoint(tmp_path):
    for update in (100, 200):
        embedding = torch.full((1000, 16), update / 100)
        torch.save({"model": {"encoder.embed": embedding, "decoder.embed": embedding, "decoder.out": embedding,
                              "decoder.bias": torch.full((1000, 16), update / 100)}}, tmp_path / f"checkpoint_1_{update}.pt")
    out = tmp_path / "averaged.pt"
    average_last(tmp_path, 2, out)
    averaged = torch.load(out)["model"]
    assert averaged["encoder.embed"] is averaged["decoder.embed"] is averaged["decoder.out"]
    assert averaged["decoder.bias"] is not averaged["encoder.embed"]
    assert torch.equal(averaged["decoder.out"], torch.full((1000, 16), 1.5))
    assert torch.equal(averaged["decoder.bias"], averaged["decoder.out"])
    assert out.stat().st_size < 2.2 * 1000 * 16 * 4  # two tensors of 64 kB, not four


def test_what_cannot_be_averaged_says_why(tmp_path):
    with pytest.raises(AveragingError, match="no interval checkpoints"):
        average_last(tmp_path, 10, tmp_path / "out.pt")
    first = save_checkpoint(tmp_path / "checkpoint_1_100.pt", 1.0)
    other = tmp_path / "checkpoint_2_200.pt"
    torch.save({"model": {"another": torch.zeros(1)}}, other)
    with pytest.raises(AveragingError, match="checkpoint_2_200.pt: its weights are not those of"):
        average_checkpoints([first, other], tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    proc = run_cli("python", "-m", "node_experiments.averaging", tmp_path / "empty", "--out", tmp_path / "o.pt",
                   check=False)
    assert proc.returncode == 2 and "no interval checkpoints" in proc.stderr
    proc = run_cli("python", "-m", "node_experiments.averaging", tmp_path, "--last", "0", "--out", tmp_path / "o.pt",
                   check=False)
    assert proc.returncode == 2 and "--last must be at least 1" in proc.stderr


class Payload:
    """A global no fairseq checkpoint holds: safe loading must refuse it."""


def test_a_checkpoint_carrying_an_arbitrary_global_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint_1_100.pt", 1.0, extra={"payload": Payload()})
    with pytest.raises(pickle.UnpicklingError, match="Payload"):
        average_last(tmp_path, 1, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
