import os
import sys
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs one worker per core: each on one thread, and so every process it starts
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))

from helpers import preprocess, write_reverse_corpus  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: trains through fairseq's CLIs, runs a notebook, the study runner or the benchmarks; "
                   "bash scripts/test.sh -m 'not slow' runs the rest in a few minutes")


@pytest.fixture(scope="session")
def reverse_data(tmp_path_factory):
    """A binarised tiny reverse-the-sequence corpus (train 400, valid 40, test 20)."""
    root = tmp_path_factory.mktemp("reverse")
    text = write_reverse_corpus(root / "text", {"train": 400, "valid": 40, "test": 20})
    return preprocess(text, root / "bin")
