"""The stock fairseq CLIs with --user-dir node_transformer, on tiny data (in the style of fairseq's test_binaries)."""
import json
import subprocess

import pytest
import torch

from helpers import BIN, REPO, USER_DIR, run_cli, tiny_training_args
from node_transformer.options import NODE_OPTION_NAMES

pytestmark = pytest.mark.slow  # fairseq subprocesses (the 'slow' marker: tests/conftest.py)

# Every option of the NODE model's dataclass, as its command-line flag.
NODE_FLAGS = ["--" + name.replace("_", "-") for name in NODE_OPTION_NAMES if name.startswith("node_")]
TRAIN_VARIANTS = {
    "encoder": ["--node-encoder", "--decoder-layers", "1"],
    "decoder": ["--node-decoder", "--encoder-layers", "1"],
    "both": ["--node-encoder", "--node-decoder"],
    "separated": ["--node-decoder", "--node-separated-decoder", "--encoder-layers", "1"],
    "augmented": ["--node-encoder", "--node-decoder", "--node-augment-dims", "1"],
    "time_dependent": ["--node-decoder", "--node-time-dependent", "--encoder-layers", "1"],
    "backprop": ["--node-encoder", "--node-decoder", "--node-gradient", "backprop"],
    "adjoint_seminorm": ["--node-encoder", "--node-decoder", "--node-adjoint-seminorm"],
    "rk4": ["--node-decoder", "--encoder-layers", "1", "--node-method", "rk4", "--node-step-size", "0.25"],
}


def train(data, save_dir, *flags, updates=3):
    return run_cli("fairseq-train", *tiny_training_args(data, save_dir, *flags, updates=updates))


def test_help_shows_every_node_flag_with_help_text():
    out = run_cli("fairseq-train", "--user-dir", USER_DIR, "--arch", "node_transformer", "--help").stdout
    for flag in NODE_FLAGS:
        assert flag in out, flag
    assert "ANODE" in out and "step budget" in out and "fixed-grid" in out


def test_bad_flag_fails_before_training(reverse_data, tmp_path):
    proc = run_cli("fairseq-train", reverse_data, "--user-dir", USER_DIR, "--arch", "node_transformer_tiny",
                   "--node-decoder", "--node-ts", "1,0", "--cpu", "--max-update", "3", "--max-tokens", "400",
                   "--save-dir", tmp_path,
                   check=False)
    assert proc.returncode != 0
    assert "--node-ts must be strictly increasing" in proc.stderr
    assert "begin training" not in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("*.pt"))


@pytest.mark.parametrize("flags", TRAIN_VARIANTS.values(), ids=TRAIN_VARIANTS.keys())
def test_train_variant(reverse_data, tmp_path, flags):
    proc = train(reverse_data, tmp_path, *flags)
    log = proc.stdout + proc.stderr
    assert "num_updates=3" in log and "valid on 'valid' subset" in log
    assert (tmp_path / "checkpoint_last.pt").exists()


@pytest.fixture(scope="module")
def checkpoints(reverse_data, tmp_path_factory):
    """A NODE (encoder + decoder, augmented) and a classic-sides checkpoint of node_transformer."""
    root = tmp_path_factory.mktemp("ckpt")
    train(reverse_data, root / "node", "--node-encoder", "--node-decoder", "--node-augment-dims", "1", updates=6)
    train(reverse_data, root / "classic", "--encoder-layers", "1", "--decoder-layers", "1", updates=6)
    return {"node": root / "node" / "checkpoint_last.pt", "classic": root / "classic" / "checkpoint_last.pt"}


@pytest.mark.parametrize("kind", ["node", "classic"])
def test_generate_beam5(reverse_data, checkpoints, kind):
    # fairseq 0.12 drops a last batch smaller than --required-batch-size-multiple (default 8; fairseq
    # issue #5036): 20 test sentences would give 16 translations.
    proc = run_cli("fairseq-generate", reverse_data, "--user-dir", USER_DIR, "--path", checkpoints[kind],
                   "--beam", "5", "--cpu", "--max-tokens", "1000", "--max-len-b", "12",
                   "--required-batch-size-multiple", "1")
    hypotheses = [line for line in proc.stdout.splitlines() if line.startswith("H-")]
    assert len(hypotheses) == 20
    assert "BLEU4" in proc.stdout


@pytest.mark.parametrize("kind", ["node", "classic"])
def test_interactive(reverse_data, checkpoints, kind):
    proc = subprocess.run(
        [str(BIN / "fairseq-interactive"), str(reverse_data), "--user-dir", USER_DIR, "--path",
         str(checkpoints[kind]), "--source-lang", "src", "--target-lang", "tgt", "--cpu", "--beam", "2",
         "--max-len-b", "12"],
        input="w1 w2 w3\nw4 w5\n", capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sum(line.startswith("H-") for line in proc.stdout.splitlines()) == 2


def test_eval_bleu_checkpoint_loads_safely(reverse_data, tmp_path):
    """torch >= 2.6 loads with weights_only=True; the user-dir allow-lists exactly what fairseq saves."""
    from node_transformer.checkpoint_safety import FAIRSEQ_CHECKPOINT_CLASSES

    train(reverse_data, tmp_path, "--node-decoder", "--encoder-layers", "1", "--eval-bleu",
          "--eval-bleu-args", '{"beam": 1, "max_len_b": 10}', "--best-checkpoint-metric", "bleu",
          "--maximize-best-checkpoint-metric", updates=4)
    checkpoint = tmp_path / "checkpoint_best.pt"
    # In a fresh interpreter (no user-dir imported, so nothing allow-listed yet): what does it need?
    probe = subprocess.run(
        [str(BIN / "python"), "-c", "import json, sys, torch; "
         "print(json.dumps(torch.serialization.get_unsafe_globals_in_checkpoint(sys.argv[1]))); "
         "torch.load(sys.argv[1])", str(checkpoint)],
        capture_output=True, text=True,
    )
    needed = set(json.loads(probe.stdout.splitlines()[0]))
    assert probe.returncode != 0 and "weights_only" in probe.stderr, "plain torch.load should refuse it"
    allowed = {f"{c.__module__}.{c.__qualname__}" for c in FAIRSEQ_CHECKPOINT_CLASSES}
    assert "argparse.Namespace" in needed and any("ndarray" in name for name in needed)
    assert needed <= allowed
    torch.load(checkpoint)  # weights_only=True by default; works with the user-dir imported
    proc = run_cli("fairseq-generate", reverse_data, "--user-dir", USER_DIR, "--path", checkpoint,
                   "--beam", "5", "--cpu", "--max-tokens", "1000", "--max-len-b", "12")
    assert "BLEU4" in proc.stdout
