"""Plots from TensorBoard logs (node_experiments.plot) and the study notebook, on real tiny runs."""
import os
import subprocess
import sys

import pytest

from helpers import REPO
from test_trainer import train

pytestmark = pytest.mark.slow  # fairseq subprocesses (the 'slow' marker: tests/conftest.py)

NODE_RUN, CLASSIC_RUN = "node_full_tol1e-2", "transformer_1layer"


@pytest.fixture(scope="module")
def runs(reverse_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(reverse_data, root / NODE_RUN / "checkpoints", "--node-encoder", "--node-decoder",
          "--tensorboard-logdir", root / NODE_RUN / "tb", updates=4)
    train(reverse_data, root / CLASSIC_RUN / "checkpoints", "--encoder-layers", "1", "--decoder-layers", "1",
          "--tensorboard-logdir", root / CLASSIC_RUN / "tb", updates=4)
    return root


def plot(*args):
    return subprocess.run([sys.executable, "-m", "node_experiments.plot", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def assert_image(path):
    import matplotlib.image

    assert path.stat().st_size > 1000, path
    if path.suffix == ".png":
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0
    else:
        assert path.read_text().lstrip().startswith("<?xml")


def test_cli_compares_two_runs(runs, tmp_path):
    proc = plot(runs / NODE_RUN, runs / CLASSIC_RUN, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("loss", "best_valid_loss_vs_updates", "best_valid_loss_vs_hours", "nfe", "gnorm"):
        for suffix in ("png", "svg"):
            assert_image(tmp_path / f"{name}.{suffix}")
    svg = (tmp_path / "best_valid_loss_vs_updates.svg").read_text()
    assert NODE_RUN in svg and CLASSIC_RUN in svg  # both runs, labelled by experiment name
    assert "decoder, backward (adjoint)" in (tmp_path / "nfe.svg").read_text()
    gnorm = (tmp_path / "gnorm.svg").read_text()
    assert "before clipping" in gnorm and NODE_RUN in gnorm and CLASSIC_RUN in gnorm


def test_missing_metrics_are_skipped(runs, tmp_path):
    proc = plot(runs / CLASSIC_RUN, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_image(tmp_path / "loss.png")
    assert not (tmp_path / "nfe.png").exists() and not (tmp_path / "budget_skips.png").exists()


def test_missing_or_empty_directory_is_a_clear_error(tmp_path):
    proc = plot(tmp_path / "nowhere", "--out", tmp_path / "out")
    assert proc.returncode == 1 and "nowhere: no such directory" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = plot(tmp_path / "empty", "--out", tmp_path / "out")
    assert proc.returncode == 1 and "no TensorBoard logs" in proc.stderr


def test_notebook_runs_headless(runs, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "notebooks" / "node_transformer_study.ipynb", as_version=4)
    out = tmp_path / "study"
    os.environ.update(NODE_STUDY_RUNS=str(runs), NODE_STUDY_OUT=str(out))
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    finally:
        del os.environ["NODE_STUDY_RUNS"], os.environ["NODE_STUDY_OUT"]
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for o in cell.get("outputs", []))
    assert f"runs found: {NODE_RUN}, {CLASSIC_RUN}" in outputs or f"runs found: {CLASSIC_RUN}, {NODE_RUN}" in outputs
    assert "skipping 'time_dependence'" in outputs  # neither of its runs exists here
    for section in ("node_vs_1layer", "all_runs"):
        for name in ("loss", "best_valid_loss_vs_updates", "best_valid_loss_vs_hours", "nfe"):
            assert_image(out / section / f"{name}.png")
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    # the ODE BERT section, from the comparison's committed records (benchmarks/odebert.py)
    tables = "".join(o.get("data", {}).get("text/markdown", "") for cell in notebook.cells
                     for o in cell.get("outputs", []))
    assert "### The ODE BERT:" in tables and "| mlm_node_layer_tiny |" in tables
    for name in ("best_valid_loss_vs_updates", "nfe"):
        assert_image(out / "odebert" / f"{name}.png")


def test_a_whole_study_gets_a_colour_per_run(runs, tmp_path):
    import re
    import shutil

    names = [f"experiment_{i:02d}" for i in range(12)]  # more runs than matplotlib's 10-colour cycle
    for name in names:
        shutil.copytree(runs / NODE_RUN, tmp_path / "runs" / name)
    proc = plot(*(tmp_path / "runs" / name for name in names), "--out", tmp_path / "out", "--formats", "svg")
    assert proc.returncode == 0, proc.stderr
    svg = (tmp_path / "out" / "best_valid_loss_vs_updates.svg").read_text()
    line_colours = set(re.findall(r"stroke: (#[0-9a-f]{6}); stroke-width: 1\.5", svg))
    assert len(line_colours) == len(names), line_colours


def test_nfe_legend_names_runs_missing_from_the_first_panel(tmp_path):
    from tensorboardX import SummaryWriter

    for name, tag in (("encoder_and_decoder", "nfe_enc_fwd"), ("decoder_only", "nfe_dec_fwd")):
        with SummaryWriter(str(tmp_path / name / "tb" / "train_inner")) as writer:
            for update in (10, 20):
                writer.add_scalar(tag, 14.0 + update / 10, update)
                writer.add_scalar("loss", 9.0 - update / 10, update)
    proc = plot(tmp_path / "encoder_and_decoder", tmp_path / "decoder_only", "--out", tmp_path / "out",
                "--formats", "svg")
    assert proc.returncode == 0, proc.stderr
    svg = (tmp_path / "out" / "nfe.svg").read_text()
    assert "encoder, forward" in svg and "decoder, forward" in svg
    assert "decoder_only" in svg and "encoder_and_decoder" in svg  # each run named in the legend
