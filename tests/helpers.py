"""Shared test helpers: fairseq CLIs and tiny dimensions; the synthetic task lives in node_experiments.synthetic."""
import os
import subprocess
import sys
from pathlib import Path

from node_experiments.synthetic import build, preprocess, write_reverse_corpus  # noqa: F401
from node_experiments.synthetic import first_batch as batch, summed_nll as nll  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "node_transformer")
BIN = Path(sys.executable).parent
TINY_DIMS = [
    "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
    "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def cli_env():
    """The environment the tests run fairseq's console scripts in: quiet, one thread each."""
    return dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")


def run_cli(name, *args, timeout=600, check=True):
    """Run a fairseq console script of this environment; returns the CompletedProcess."""
    proc = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=cli_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc



ENCODER_DIMS = ["--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2"]
# The NODE variants that the model, gradient and regulariser tests share; each picks its own by name.
VARIANTS = {
    "decoder": ["--node-decoder", "--encoder-layers", "1"],
    "encoder": ["--node-encoder", "--decoder-layers", "1"],
    "both_augmented": ["--node-encoder", "--node-decoder", "--node-augment-dims", "1"],
    "both_augmented_time_dependent": ["--node-encoder", "--node-decoder", "--node-augment-dims", "1",
                                      "--node-time-dependent"],
    "decoder_time_dependent": ["--node-decoder", "--encoder-layers", "1", "--node-time-dependent"],
    "separated_augmented": ["--node-decoder", "--node-separated-decoder", "--node-augment-dims", "1",
                            "--encoder-layers", "1"],
    "layer_both_augmented_time_dependent": ["--node-function", "layer", "--node-encoder", "--node-decoder",
                                            "--node-augment-dims", "1", "--node-time-dependent"],
    "layer_separated": ["--node-function", "layer", "--node-decoder", "--node-separated-decoder",
                        "--encoder-layers", "1"],
}


def variants(*names):
    """{name: flags} of the shared VARIANTS named."""
    return {name: VARIANTS[name] for name in names}


def tiny_training_args(data, save_dir, *flags, updates=3):
    """fairseq-train arguments for a few updates of the tiny model on DATA, logging every update."""
    return [
        data, "--user-dir", USER_DIR, "--arch", "node_transformer_tiny", *TINY_DIMS,
        "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "400", "--max-update", updates, "--cpu",
        "--save-dir", save_dir, "--log-format", "simple", "--log-interval", "1", "--no-progress-bar",
        "--no-epoch-checkpoints", "--seed", "1", "--required-batch-size-multiple", "1", *flags,
    ]


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


def adjoint_and_backprop_models(data_dir, *flags, arch="node_transformer_tiny"):
    """(task, adjoint model, backprop model): the same weights, float64, in training mode."""
    task, adjoint_model, _ = build(data_dir, *flags, "--node-gradient", "adjoint", arch=arch)
    _, backprop_model, _ = build(data_dir, *flags, "--node-gradient", "backprop", arch=arch)
    backprop_model.load_state_dict(adjoint_model.state_dict())
    return task, adjoint_model.double().train(), backprop_model.double().train()


def script_module(path):
    """A script of the repository (not a package module) imported as a module, named after its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def study_script():
    """scripts/study.py as a module (its plan, paths and report functions)."""
    return script_module(REPO / "scripts" / "study.py")
