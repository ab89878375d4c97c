"""The ODE BERT (--arch node_roberta_tiny): fairseq's RoBERTa with a NODE encoder. Adjoint gradients equal
backprop (float64, dropout on, regularisers included), the classic architecture is fairseq's RoBERTa, options
a NODE encoder cannot honour are refused by name, and the data script's errors name the problem."""
import subprocess
import sys

import pytest
import torch

from helpers import ENCODER_DIMS, adjoint_and_backprop_models, assert_same_gradients, build

MLM = ["--task", "node_masked_lm", "--tokens-per-sample", "32", "--sample-break-mode", "complete"]
VARIANTS = {
    "chain": [],
    "augmented_time_dependent": ["--node-augment-dims", "1", "--node-time-dependent"],
    "layer_regularised": ["--node-function", "layer", "--node-kinetic-reg", "0.1", "--node-jacobian-reg", "0.05"],
}


@pytest.fixture(scope="module")
def mlm_data(tmp_path_factory):
    """A binarised masked-LM corpus of 200 short sentences over 12 words (fairseq-preprocess --only-source)."""
    import random

    root = tmp_path_factory.mktemp("mlm")
    rng = random.Random(0)
    for split, n in (("train", 200), ("valid", 20), ("test", 20)):
        lines = [" ".join(f"w{rng.randrange(12)}" for _ in range(rng.randint(4, 9))) for _ in range(n)]
        (root / f"corpus.{split}").write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "fairseq_cli.preprocess", "--only-source", "--trainpref",
                    root / "corpus.train", "--validpref", root / "corpus.valid", "--testpref", root / "corpus.test",
                    "--destdir", root / "bin", "--workers", "1"], check=True, capture_output=True)
    return root / "bin"


def masked_batch(task, size=6):
    task.load_dataset("train")
    dataset = task.dataset("train")
    return dataset.collater([dataset[i] for i in range(size)])


def masked_lm_loss(model, sample):
    """The masked-LM criterion's summed NLL over the masked tokens."""
    masked = sample["target"].ne(model.encoder.dictionary.pad())
    logits = model(**sample["net_input"], masked_tokens=masked)[0]
    return torch.nn.functional.cross_entropy(logits.double(), sample["target"][masked], reduction="sum")


def gradients(task, model, sample):
    from node_transformer import regularisation

    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks in both runs
    criterion = regularisation.with_regularisers(lambda m, s: (masked_lm_loss(m, s), s["target"].ne(1).sum(), {}),
                                                 per_position=True)
    criterion(model, sample)[0].backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_adjoint_gradients_equal_backprop(mlm_data, variant):
    flags = [*MLM, *ENCODER_DIMS, "--node-encoder", *variant, "--activation-fn", "gelu", "--node-rtol", "1e-10",
             "--node-atol", "1e-10", "--dropout", "0.2", "--activation-dropout", "0.1"]
    task, adjoint_model, backprop_model = adjoint_and_backprop_models(mlm_data, *flags, arch="node_roberta_tiny")
    torch.manual_seed(0)
    sample = masked_batch(task)
    assert sample["target"].ne(1).any()  # something is masked
    adjoint = gradients(task, adjoint_model, sample)
    backprop = gradients(task, backprop_model, sample)
    assert_same_gradients(adjoint, backprop)
    block = adjoint_model.node_blocks()["enc"]
    assert block.stats.nfe_backward > 0
    embeddings = adjoint["encoder.sentence_encoder.embed_tokens.weight"]
    assert embeddings.abs().max() > 0 and adjoint["encoder.lm_head.dense.weight"].abs().max() > 0


def test_without_node_encoder_it_is_fairseqs_roberta(mlm_data):
    _, classic, _ = build(mlm_data, *MLM, *ENCODER_DIMS, "--encoder-layers", "2", arch="node_roberta_tiny")
    _, roberta, _ = build(mlm_data, *MLM, *ENCODER_DIMS, "--encoder-layers", "2", arch="roberta")
    assert {k: v.shape for k, v in classic.state_dict().items()} == {k: v.shape for k, v in roberta.state_dict().items()}
    assert classic.node_blocks() == {}
    _, node, _ = build(mlm_data, *MLM, *ENCODER_DIMS, "--node-encoder", arch="node_roberta_tiny")
    outside = {k for k in node.state_dict() if "layers." not in k}
    final_norm = {"encoder.sentence_encoder.layer_norm.weight", "encoder.sentence_encoder.layer_norm.bias"}
    # the embeddings and the LM head are RoBERTa's; the NODE block is pre-norm, so a final norm follows it
    assert outside == {k for k in roberta.state_dict() if "layers." not in k} | final_norm
    assert set(node.node_blocks()) == {"enc"}


@pytest.mark.parametrize("flags, message", [
    (["--node-encoder", "--node-decoder"], "--node-decoder: a masked language model has no decoder"),
    (["--node-encoder", "--encoder-layerdrop", "0.1"], "--encoder-layerdrop reads per-layer sub-modules"),
    (["--node-encoder", "--encoder-layers-to-keep", "0"], "--encoder-layers-to-keep reads per-layer"),
    (["--node-encoder", "--mha-reg-scale-factor", "0.1"], "--mha-reg-scale-factor reads per-layer"),
    (["--node-encoder", "--node-ts", "1,0"], "--node-ts must be strictly increasing"),
])
def test_what_a_node_encoder_cannot_honour_is_refused_by_name(mlm_data, flags, message):
    with pytest.raises(ValueError, match=message):
        build(mlm_data, *MLM, *ENCODER_DIMS, *flags, arch="node_roberta_tiny")


def test_the_data_script_names_what_is_wrong(tmp_path):
    from node_experiments import mlm_data

    prepared = tmp_path / "multi30k"
    (prepared / "bpe").mkdir(parents=True)
    (prepared / "bin").mkdir()
    (prepared / "bin" / "dict.en.txt").write_text("a 1\n")
    (prepared / "bin" / "dict.de.txt").write_text("b 1\n")
    with pytest.raises(mlm_data.DataError, match="dictionaries of en and de differ"):
        mlm_data.pretraining_corpus(prepared, tmp_path / "out")
    (prepared / "bin" / "dict.de.txt").write_text("a 1\n")
    for split in ("train", "valid", "test"):
        (prepared / "bpe" / f"{split}.en").write_text("a\n")
    (prepared / "bpe" / "train.de").write_text("\n\n")
    with pytest.raises(mlm_data.DataError, match="train.de holds no lines"):
        mlm_data.pretraining_corpus(prepared, tmp_path / "out")
    (prepared / "bpe" / "train.de").write_text("a\n")
    with pytest.raises(mlm_data.DataError, match="a shuffled pair needs at least two sentences"):
        mlm_data.translation_pairs(prepared, tmp_path / "pairs")
    for lang in ("en", "de"):
        (prepared / "bpe" / f"train.{lang}").write_text("a\na\n")
    with pytest.raises(mlm_data.DataError, match="no .*valid.de"):
        mlm_data.translation_pairs(prepared, tmp_path / "pairs")
