"""The ODE BERT through the real CLIs on the Multi30k subset: the data script, a few updates of masked-LM
pretraining (NFE in the progress lines and TensorBoard), fine-tuning on the translation-or-not pairs from
the pretrained checkpoint, fill_mask / extract_features through from_pretrained, and the HuggingFace export:
loaded with AutoModelForMaskedLM/AutoTokenizer (trust_remote_code) in a process where fairseq and this
project cannot be imported, its logits equal the fairseq model's within 1e-4 on the same input (dropout
off, the same solver settings), its tokenizer reproduces the project's preparation, and what cannot be
exported is refused by name."""
import json
import subprocess
import sys

import pytest
import torch

from helpers import REPO
from multi30k_subset import prepared, script  # noqa: F401  (prepared: a fixture)
from node_experiments import hf_export, mlm_data
from node_experiments.experiment_config import read_flags

pytestmark = pytest.mark.slow  # fairseq trainings through the CLIs (the 'slow' marker: tests/conftest.py)

MLM_CONFIGS = sorted((REPO / "configs").glob("mlm_*.args"))
SHORT = ["--max-update", "6", "--log-interval", "1", "--warmup-updates", "2", "--max-tokens", "1024",
         "--validate-interval-updates", "3"]
SENTENCES = ["A man in a blue <mask> is riding a bike.", "Two dogs play in the snow.", "Ein Hund läuft!"]
# A process without fairseq or node-transformer: both imports fail, as where they are not installed.
BLOCKED = "import sys; sys.modules.update({name: None for name in ('fairseq', 'node_transformer', 'node_experiments')}); "


@pytest.fixture(scope="module")
def corpora(prepared, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("odebert")
    return mlm_data.pretraining_corpus(prepared, root / "mlm"), mlm_data.translation_pairs(prepared, root / "pairs")


@pytest.fixture(scope="module")
def runs(corpora, tmp_path_factory):
    """Short masked-LM runs: the chain function with dopri5 and the adjoint (augmented, time-dependent), and
    the layer function on a fixed grid with backprop."""
    root = tmp_path_factory.mktemp("runs")
    env = {"DATA": str(corpora[0]), "RUNS": str(root)}
    logs = {"mlm_node_tiny": script("train.sh", REPO / "configs" / "mlm_node_tiny.args", *SHORT, "--node-augment-dims",
                                    "1", "--node-time-dependent", env=env).stdout}
    logs["mlm_node_layer_tiny"] = script("train.sh", REPO / "configs" / "mlm_node_layer_tiny.args", *SHORT, env=env).stdout
    return root, logs


def test_the_corpora(prepared, corpora):  # noqa: F811
    corpus, pairs = corpora
    counts = json.loads((corpus / "corpus.json").read_text())
    assert counts == {"languages": ["en", "de"], "lines": {"train": 600, "valid": 80, "test": 60}}
    assert (corpus / "dict.txt").read_text() == (prepared / "bin" / "dict.en.txt").read_text()
    splits = json.loads((pairs / "pairs.json").read_text())["splits"]
    assert splits["train"]["pairs"] == 300 and 100 < splits["train"]["translations"] < 200
    labels = (pairs.parent / "text" / "label.valid").read_text().split()
    english = (pairs.parent / "text" / "input0.valid").read_text().splitlines()
    german = (pairs.parent / "text" / "input1.valid").read_text().splitlines()
    truth = (prepared / "bpe" / "valid.de").read_text().splitlines()
    assert [label == "1" for label in labels] == [g == t for g, t in zip(german, truth)] and len(english) == 40


@pytest.mark.parametrize("config", MLM_CONFIGS, ids=[c.stem for c in MLM_CONFIGS])
def test_every_masked_lm_config_builds_its_model(corpora, config):
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(corpora[0]), "--user-dir", str(REPO / "node_transformer"),
                                                *read_flags(config), "--cpu"])
    task = tasks.setup_task(args)
    model = task.build_model(args)
    assert ("enc" in model.node_blocks()) == ("node" in config.stem)


def test_pretrain_fine_tune_and_fill_mask(corpora, runs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from node_transformer.models.node_roberta import NODERobertaModel

    corpus, pairs = corpora
    root, logs = runs
    inner = [line for line in logs["mlm_node_tiny"].splitlines() if "train_inner" in line]
    assert len(inner) == 6 and all("nfe_enc_fwd=" in line and "nfe_enc_bwd=" in line for line in inner)
    assert "nfe_enc_fwd" in next(line for line in logs["mlm_node_tiny"].splitlines() if "valid on 'valid'" in line)
    assert "nfe_enc_bwd" not in logs["mlm_node_layer_tiny"] and "nfe_enc_fwd=" in logs["mlm_node_layer_tiny"]
    run = root / "mlm_node_tiny"
    events = EventAccumulator(str(run / "tb" / "train_inner"))
    events.Reload()
    assert {"nfe_enc_fwd", "nfe_enc_bwd", "loss"} <= set(events.Tags()["scalars"])
    assert (run / "data" / "dict.txt").is_file() and (run / "data" / "bpe.codes").is_file()

    tuned = script("train.sh", REPO / "configs" / "pairs_node_tiny.args", "--restore-file",
                   run / "checkpoints" / "checkpoint_best.pt", "--max-update", "4", "--log-interval", "1",
                   "--warmup-updates", "2", "--node-augment-dims", "1", "--node-time-dependent",
                   env={"DATA": str(pairs), "RUNS": str(tmp_path)})
    assert "Loaded checkpoint" in tuned.stdout
    valid = next(line for line in tuned.stdout.splitlines() if "valid on 'valid'" in line)
    assert "accuracy" in valid and "nfe_enc_fwd" in valid
    assert all("nfe_enc_fwd=" in line for line in tuned.stdout.splitlines() if "train_inner" in line)

    roberta = NODERobertaModel.from_pretrained(run).eval()
    filled = roberta.fill_mask("A man in a blue <mask>.", topk=3)
    assert 1 <= len(filled) <= 3  # fairseq leaves out a special symbol (</s>, ...) among the top 3
    for text, score, token in filled:
        assert text == f"A man in a blue {token}." and 0 < score <= 1 and token
    assert roberta.last_nfe["encoder"] > 0
    tokens = roberta.encode("Two dogs play in the snow.")
    assert roberta.decode(tokens) == "two dogs play in the snow."
    features = roberta.extract_features(tokens)
    assert features.shape == (1, len(tokens), 128) and roberta.last_nfe["encoder"] > 0


def hf_outputs(directory):
    """Token ids and logits of SENTENCES from the exported directory, computed without fairseq."""
    program = BLOCKED + (
        "import json, torch; from transformers import AutoModelForMaskedLM, AutoTokenizer; "
        f"d = {str(directory)!r}; model = AutoModelForMaskedLM.from_pretrained(d, trust_remote_code=True).eval(); "
        "tok = AutoTokenizer.from_pretrained(d, trust_remote_code=True); "
        f"batch = tok({SENTENCES!r}, padding=True, return_tensors='pt'); "
        "logits = model(**batch).logits; "
        "print(json.dumps({'ids': batch['input_ids'].tolist(), 'logits': logits.tolist(), "
        "'decoded': tok.decode(batch['input_ids'][1], skip_special_tokens=True)}))")
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["mlm_node_tiny", "mlm_node_layer_tiny"])
def test_the_export_loads_without_fairseq_and_matches(runs, tmp_path, name):
    runs = runs[0]
    from node_transformer.models.node_roberta import NODERobertaModel

    out = hf_export.export(runs / name, tmp_path / "hf")
    assert {"config.json", "model.safetensors", "vocab.json", "bpe.codes", "modeling_node_roberta.py",
            "configuration_node_roberta.py", "tokenization_node_roberta.py"} <= {p.name for p in out.iterdir()}
    exported = hf_outputs(out)
    roberta = NODERobertaModel.from_pretrained(runs / name).eval()
    tokens = [roberta.encode(sentence.replace("<mask>", "").replace("  ", " ")) for sentence in SENTENCES]
    # fairseq's ids: the mask token kept whole, the rest prepared as the hub prepares it
    first = roberta.encode(SENTENCES[0].split("<mask>")[0])[:-1].tolist() + [roberta.task.mask_idx] + \
        roberta.encode(SENTENCES[0].split("<mask>")[1])[1:].tolist()
    assert exported["ids"][0][:len(first)] == first
    assert exported["ids"][1][:len(tokens[1])] == tokens[1].tolist()
    assert exported["decoded"] == "two dogs play in the snow."
    batch = torch.tensor(exported["ids"])
    with torch.no_grad():
        logits = roberta.model(batch)[0]
    real = batch.ne(roberta.task.source_dictionary.pad())
    difference = (logits - torch.tensor(exported["logits"])).abs()[real].max()
    assert difference < 1e-4, difference


def test_what_cannot_be_exported_is_refused_by_name(runs, tmp_path):
    runs = runs[0]
    state = torch.load(runs / "mlm_node_tiny" / "checkpoints" / "checkpoint_best.pt", weights_only=False)
    model_cfg = state["cfg"]["model"]  # made to say what a classic node_roberta's checkpoint says
    if isinstance(model_cfg, dict):
        model_cfg["node_encoder"] = False
    else:
        model_cfg.node_encoder = False
    classic = tmp_path / "classic.pt"
    torch.save(state, classic)
    with pytest.raises(hf_export.ExportError, match="classic encoder"):
        hf_export.export(runs / "mlm_node_tiny", tmp_path / "classic", checkpoint=classic)
    with pytest.raises(hf_export.ExportError, match="no checkpoint"):
        hf_export.export(runs / "mlm_node_tiny", tmp_path / "x", checkpoint="nope.pt")
    translation = REPO / "tests" / "data" / "pre_refactor" / "separated_aug.pt"
    with pytest.raises(hf_export.ExportError, match="not a node_roberta"):
        hf_export.export(runs / "mlm_node_tiny", tmp_path / "z", checkpoint=translation)
    proc = subprocess.run([sys.executable, "-m", "node_experiments.hf_export", str(runs / "none"), str(tmp_path / "y")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr
