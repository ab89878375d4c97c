"""The trained models in models/ (python -m node_experiments.ship): small, weights only, and translating from
a fresh clone with no training, as the README shows."""
import re

import pytest

from helpers import REPO

MODELS = sorted(path for path in (REPO / "models").glob("*") if (path / "checkpoints").is_dir())
README_EXAMPLE = re.compile(r"echo \"(?P<source>[^\"]+)\" \| bash scripts/translate.sh (?P<model>models/\S+)\n"
                            r"(?P<german>[^\n`]+)\n")


def readme_example():
    example = README_EXAMPLE.search((REPO / "README.md").read_text())
    assert example, "the README's translation example with a shipped model, followed by its output"
    return example


def test_the_readme_translates_with_a_shipped_model():
    assert MODELS, "models/ ships no model"
    assert REPO / readme_example()["model"] in MODELS


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_a_shipped_model_is_small_and_weights_only(model):
    from node_experiments.averaging import load_checkpoint
    from node_experiments.ship import DEFAULT_MAX_MB, SHIPPED

    checkpoint = model / "checkpoints" / SHIPPED
    assert checkpoint.stat().st_size <= DEFAULT_MAX_MB * 2**20
    assert "last_optimizer_state" not in load_checkpoint(checkpoint)
    assert (model / "MODEL.md").is_file() and (model / "data" / "prepared.json").is_file()


def test_the_readme_example_is_the_models_real_output():
    from node_transformer import hub

    example = readme_example()
    translator = hub.load(REPO / example["model"])
    assert translator.translate(example["source"]) == example["german"]
