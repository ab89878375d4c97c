"""Shared test helpers: fairseq CLIs and tiny dimensions; the synthetic task lives in node_transformer.synthetic."""
import os
import subprocess
import sys
from pathlib import Path

from node_transformer.synthetic import build, preprocess, write_reverse_corpus  # noqa: F401
from node_transformer.synthetic import first_batch as batch, summed_nll as nll  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "node_transformer")
BIN = Path(sys.executable).parent
TINY_DIMS = [
    "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
    "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def run_cli(name, *args, timeout=600, check=True):
    """Run a fairseq console script of this environment; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc



def assert_same_gradients(gradients, reference, rtol=1e-6):
    """Each parameter's gradient within ``rtol`` of the reference's (parameters with a gradient that is
    zero in exact arithmetic, like a key projection's bias, judged against the total); returns the total
    reference norm."""
    import torch

    assert gradients.keys() == reference.keys()
    total = torch.cat([g.flatten() for g in reference.values()]).norm()
    for name, expected in reference.items():
        error = (gradients[name] - expected).norm()
        assert error <= rtol * max(expected.norm(), 1e-6 * total), f"{name}: {error:.3e} vs {expected.norm():.3e}"
    return total


def adjoint_and_backprop_models(data_dir, *flags):
    """(task, adjoint model, backprop model): the same weights, float64, in training mode."""
    task, adjoint_model, _ = build(data_dir, *flags, "--node-gradient", "adjoint")
    _, backprop_model, _ = build(data_dir, *flags, "--node-gradient", "backprop")
    backprop_model.load_state_dict(adjoint_model.state_dict())
    return task, adjoint_model.double().train(), backprop_model.double().train()
