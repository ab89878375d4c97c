"""node_transformer model: options, shapes, padding invariance, adjoint == backprop gradients, exact generation."""
import pytest
import torch

from helpers import TINY_DIMS, adjoint_and_backprop_models, assert_same_gradients, batch, build, nll, variants
from node_transformer.modules import ODEBlock

VARIANTS = variants("decoder", "encoder", "both_augmented", "decoder_time_dependent", "separated_augmented",
                    "layer_both_augmented_time_dependent", "layer_separated")

@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--node-encoder", "--node-augment-dims=-1"], "--node-augment-dims"),
        (["--node-encoder", "--node-ts", "0"], "--node-ts"),
        (["--node-encoder", "--node-ts", "1,0"], "--node-ts"),
        (["--node-encoder", "--node-ts", "0,zero"], "--node-ts"),
        (["--node-encoder", "--node-rtol", "0"], "--node-rtol"),
        (["--node-encoder", "--node-atol=-1e-3"], "--node-atol"),
        (["--node-encoder", "--node-method", "dopri4"], "--node-method"),
        (["--node-encoder", "--node-method", "rk4"], "--node-step-size"),
        (["--node-encoder", "--node-method", "rk4", "--node-step-size", "0"], "--node-step-size"),
        (["--node-encoder", "--node-method", "rk4", "--node-step-size", "2"], "--node-step-size"),
        (["--node-encoder", "--node-max-num-steps", "0"], "--node-max-num-steps"),
        (["--node-separated-decoder"], "--node-separated-decoder"),
        (["--node-decoder", "--node-gradient", "sideways"], "--node-gradient"),
        (["--node-decoder", "--node-function", "residual"], "--node-function"),
        (["--node-decoder", "--node-kinetic-reg=-0.1"], "--node-kinetic-reg"),
        (["--node-decoder", "--node-jacobian-reg=-1"], "--node-jacobian-reg"),
        (["--node-decoder", "--node-steer=-0.1"], "--node-steer"),
        (["--node-decoder", "--node-steer", "1"], "--node-steer"),
        (["--node-decoder", "--node-steer", "0.5", "--node-ts", "0,0.5,1"], "--node-steer"),
        (["--node-kinetic-reg", "0.1"], "--node-kinetic-reg"),
        (["--node-steer", "0.1"], "--node-steer"),
        (["--node-encoder", "--node-detach-encoder"], "--node-detach-encoder"),
    ],
)
def test_bad_option_fails_at_build_naming_the_flag(reverse_data, capsys, flags, message):
    """Closed choices (--node-method, --node-gradient) are refused by argparse, which prints the flag
    and exits; every other bad value raises ValueError naming it when the model is built."""
    with pytest.raises((ValueError, SystemExit)) as info:
        build(reverse_data, *TINY_DIMS, *flags)
    if info.type is SystemExit:
        assert info.value.code == 2 and f"argument {message}: invalid choice" in capsys.readouterr().err
    else:
        assert message in str(info.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"node_method": "dopri4"}, "--node-method"),
        ({"node_gradient": "sideways"}, "--node-gradient"),
        ({"node_function": "residual"}, "--node-function"),
        ({"node_augment_dims": 1.5}, "--node-augment-dims"),
        ({"node_step_size": 0.1}, "--node-step-size"),
        ({"node_kinetic_reg": float("nan")}, "--node-kinetic-reg"),
        ({"node_steer": "0.1"}, "--node-steer"),
    ],
)
def test_bad_option_from_a_checkpoint_or_override_names_the_flag(reverse_data, overrides, message):
    """Options that bypass argparse (--model-overrides, a checkpoint's arguments) are checked too."""
    from node_transformer.options import NodeSettings

    _, _, args = build(reverse_data, *TINY_DIMS, "--node-encoder")
    for name, value in overrides.items():
        setattr(args, name, value)
    with pytest.raises(ValueError, match=message):
        NodeSettings.from_args(args)


def test_node_ts_accepts_list_syntax(reverse_data):
    _, model, _ = build(reverse_data, *TINY_DIMS, "--node-encoder", "--node-ts", "[0.0, 0.5, 1.0]")
    assert model.node_blocks()["enc"].settings.ts == (0.0, 0.5, 1.0)


def test_shapes_and_widths(reverse_data):
    task, model, _ = build(reverse_data, *TINY_DIMS, "--node-encoder", "--node-decoder", "--node-augment-dims", "2",
                           "--node-time-dependent")
    sample = batch(task)
    blocks = model.node_blocks()
    for block in blocks.values():
        assert isinstance(block, ODEBlock)
        assert block.func.width == 16 + 2 * 2  # embed + augment dims x heads
        assert block.func.inner_width == block.func.width + 2  # one time channel per head
        assert block.project_out.in_features == 20 and block.project_out.out_features == 16
    encoder_out = model.encoder(sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"])
    src_len = sample["net_input"]["src_tokens"].shape[1]
    assert encoder_out["encoder_out"][0].shape == (src_len, 6, 16)
    logits, _ = model(**sample["net_input"])
    assert logits.shape == (*sample["target"].shape, len(task.target_dictionary))


def test_classic_sides_are_fairseq_layers(reverse_data):
    from fairseq.models.transformer import TransformerDecoder, TransformerEncoder

    _, model, _ = build(reverse_data, *TINY_DIMS, "--encoder-layers", "2", "--decoder-layers", "3")
    assert type(model.encoder) is TransformerEncoder and len(model.encoder.layers) == 2
    assert type(model.decoder) is TransformerDecoder and len(model.decoder.layers) == 3
    assert model.node_blocks() == {}


def test_time_dependent_function_sees_t(reverse_data):
    for flags, differs in ((["--node-time-dependent"], True), ([], False)):
        _, model, _ = build(reverse_data, *TINY_DIMS, "--node-encoder", *flags)
        func = model.node_blocks()["enc"].func.eval()
        h = torch.randn(5, 2, 16)
        outputs = [func(torch.tensor(t), h) for t in (0.0, 0.7)]
        assert (not torch.allclose(*outputs)) == differs


def _encode(model, tokens, lengths):
    return model.encoder(tokens, lengths)["encoder_out"][0]


def test_padding_never_changes_real_positions(reverse_data):
    task, model, _ = build(reverse_data, *TINY_DIMS, "--node-encoder", "--node-decoder")
    model = model.double().eval()
    pad = task.source_dictionary.pad()
    sentence = batch(task, size=1)["net_input"]["src_tokens"]  # 1 x S, no padding
    length = torch.tensor([sentence.shape[1]])
    padded = torch.cat([torch.full((1, 4), pad), sentence], dim=1)  # fairseq pads sources on the left
    alone, with_padding = _encode(model, sentence, length), _encode(model, padded, length)
    torch.testing.assert_close(with_padding[4:], alone, rtol=1e-9, atol=1e-9)

    # Decoder: a target followed by padding gives the same logits at its real positions.
    prev = batch(task, size=1)["net_input"]["prev_output_tokens"]
    encoder_out = model.encoder(sentence, length)
    tgt_pad = task.target_dictionary.pad()
    prev_padded = torch.cat([prev, torch.full((1, 3), tgt_pad)], dim=1)
    logits, _ = model.decoder(prev, encoder_out=encoder_out)
    logits_padded, _ = model.decoder(prev_padded, encoder_out=encoder_out)
    torch.testing.assert_close(logits_padded[:, : prev.shape[1]], logits, rtol=1e-9, atol=1e-9)


def _gradients(task, model, sample, seed):
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks in both runs
    nll(model, sample).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_adjoint_gradients_equal_backprop(reverse_data, variant):
    """Every parameter, encoder included, gets the same gradient from the adjoint as from backprop,
    with dropout on (masks fixed for a solve). GELU keeps f smooth: with ReLU's kinks the two agree
    only to about 1e-4, however tight the tolerance."""
    flags = [*TINY_DIMS, *variant, "--activation-fn", "gelu", "--node-rtol", "1e-10", "--node-atol", "1e-10", "--dropout", "0.2",
             "--activation-dropout", "0.1"]
    task, adjoint_model, backprop_model = adjoint_and_backprop_models(reverse_data, *flags)
    sample = batch(task)
    adjoint = _gradients(task, adjoint_model, sample, seed=1)
    backprop = _gradients(task, backprop_model, sample, seed=1)
    total = assert_same_gradients(adjoint, backprop)
    encoder_grads = {name: g for name, g in adjoint.items() if name.startswith("encoder.")}
    assert encoder_grads and all(g.abs().max() > 0 for name, g in encoder_grads.items()
                                 if g.numel() > 1 and "k_proj.bias" not in name)
    assert torch.cat([g.flatten() for g in encoder_grads.values()]).norm() > 1e-3 * total
    node_stats = [b.stats for b in adjoint_model.node_blocks().values()]
    assert node_stats and all(s.nfe_backward > 0 for s in node_stats)


def test_greedy_generation_equals_argmax_of_full_forward(reverse_data):
    from fairseq.sequence_generator import SequenceGenerator

    task, model, _ = build(reverse_data, *TINY_DIMS, "--node-encoder", "--node-decoder", "--node-augment-dims", "1")
    model.eval()
    tgt_dict = task.target_dictionary
    generator = SequenceGenerator([model], tgt_dict, beam_size=1, max_len_a=0, max_len_b=12)
    checked = 0
    for index in range(4):
        sample = batch(task, split="test", size=index + 1)
        sample = {"net_input": {k: v[index:index + 1] for k, v in sample["net_input"].items()}}
        hypo = generator.generate([model], sample)[0][0]["tokens"]
        encoder_out = model.encoder(sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"])
        prefix = torch.tensor([[tgt_dict.eos()]])
        for token in hypo.tolist():
            with torch.no_grad():
                lprobs = model.get_normalized_probs(model.decoder(prefix, encoder_out=encoder_out), log_probs=True)
            lprobs = lprobs[0, -1].clone()
            lprobs[tgt_dict.pad()] = -float("inf")  # the generator never emits padding
            if prefix.shape[1] < 12:
                assert lprobs.argmax().item() == token
                checked += 1
            prefix = torch.cat([prefix, torch.tensor([[token]])], dim=1)
    assert checked >= 8


@pytest.mark.parametrize("variant", [["--node-decoder", "--encoder-layers", "1"],
                                     ["--node-decoder", "--node-separated-decoder", "--encoder-layers", "1"],
                                     ["--node-encoder", "--node-decoder"]], ids=["decoder", "separated", "full"])
def test_detach_encoder_ablation_reproduces_the_2019_bug(reverse_data, variant):
    """--node-detach-encoder: the encoder gets no gradient through the NODE decoder (the 2019 bug, on purpose),
    while every decoder parameter, the cross-attention's key and value projections included, still learns."""
    task, model, _ = build(reverse_data, *TINY_DIMS, *variant)
    _, ablated, _ = build(reverse_data, *TINY_DIMS, *variant, "--node-detach-encoder")
    ablated.load_state_dict(model.state_dict())
    sample = batch(task)
    gradients = {}
    for name, m in (("fixed", model), ("ablated", ablated)):
        m.train()
        torch.manual_seed(3)
        nll(m, sample).backward()
        gradients[name] = {n: p.grad for n, p in m.named_parameters()}
    encoder_only = [n for n in gradients["fixed"] if n.startswith("encoder.") and "embed_tokens" not in n]
    assert all(gradients["fixed"][n] is not None for n in encoder_only)
    assert sum(gradients["fixed"][n].norm() for n in encoder_only) > 0
    assert all(gradients["ablated"][n] is None or not gradients["ablated"][n].any() for n in encoder_only)
    for n, g in gradients["ablated"].items():
        if n.startswith("decoder.") and ("k_proj.weight" in n or "v_proj.weight" in n or "fc1.weight" in n):
            torch.testing.assert_close(g, gradients["fixed"][n])
