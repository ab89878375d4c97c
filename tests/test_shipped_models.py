"""The trained models in models/ (python -m node_experiments.ship): small, weights only, and translating from
a fresh clone with no training, as the README shows."""
import re

import pytest

from helpers import REPO

MODELS = sorted(path for path in (REPO / "models").glob("*") if (path / "checkpoints").is_dir())
README_EXAMPLE = re.compile(r"echo \"(?P<source>[^\"]+)\" \| bash scripts/translate.sh (?P<model>models/\S+)\n"
                            r"(?P<german>[^\n`]+)\n")


def readme_examples():
    examples = list(README_EXAMPLE.finditer((REPO / "README.md").read_text()))
    assert examples, "the README's translation examples with a shipped model, each followed by its output"
    return examples


def test_two_models_ship_the_classic_and_the_node_and_the_readme_translates_with_both():
    from node_experiments.averaging import load_checkpoint
    from node_experiments.ship import SHIPPED

    assert [m.name for m in MODELS] == ["node_layer_euler_t2", "transformer_1layer"]
    configs = {m.name: load_checkpoint(m / "checkpoints" / SHIPPED)["cfg"]["model"] for m in MODELS}
    node_blocks = {name: (config.node_encoder, config.node_decoder) for name, config in configs.items()}
    assert node_blocks == {"node_layer_euler_t2": (False, True), "transformer_1layer": (False, False)}
    assert sorted(REPO / example["model"] for example in readme_examples()) == MODELS


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_a_shipped_model_is_small_and_weights_only(model):
    from node_experiments.averaging import load_checkpoint
    from node_experiments.ship import DEFAULT_MAX_MB, SHIPPED

    checkpoint = model / "checkpoints" / SHIPPED
    assert checkpoint.stat().st_size <= DEFAULT_MAX_MB * 2**20
    assert "last_optimizer_state" not in load_checkpoint(checkpoint)
    assert (model / "MODEL.md").is_file() and (model / "data" / "prepared.json").is_file()


@pytest.mark.parametrize("index", range(2))
def test_the_readme_example_is_the_models_real_output(index):
    from node_transformer import hub

    example = readme_examples()[index]
    translator = hub.load(REPO / example["model"])
    assert translator.translate(example["source"]) == example["german"]


def test_the_shipped_node_model_is_the_best_node_run_recorded():
    """The best NODE-Transformer of the converged study's records, by best validation loss: a NODE run that
    finishes lower is shipped in its place."""
    from helpers import study_script
    from node_experiments.study_record import read_all

    study = study_script()
    records = read_all(study.CONVERGED_OUT / study.RECORDS)
    node_runs = {name: r for name, r in records.items() if r.gradient != "-" and r.best_valid_loss is not None}
    best = min(node_runs, key=lambda name: node_runs[name].best_valid_loss)
    assert [m.name for m in MODELS if m.name in node_runs] == [best]
