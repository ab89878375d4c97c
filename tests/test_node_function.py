"""--node-function layer is the continuous limit of fairseq's pre-norm layers: one Euler step of size 1 over
[0, 1] gives the outputs of fairseq's TransformerEncoderLayer/TransformerDecoderLayer (normalize_before)
holding the same weights, and k Euler steps give k applications of that layer with updates scaled by 1/k.
The chain function (the default) is not that layer."""
import pytest
import torch
from torch import nn

from helpers import TINY_DIMS, batch, build

CLASSIC_PRENORM = [*TINY_DIMS, "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-normalize-before",
                   "--decoder-normalize-before", "--dropout", "0", "--activation-fn", "gelu"]
SIDES = {
    "encoder_and_decoder": ["--node-encoder", "--node-decoder"],
    "separated_decoder": ["--node-decoder", "--node-separated-decoder", "--encoder-layers", "1"],
}


def euler(step):
    return ["--node-method", "euler", "--node-step-size", str(step)]


def twins(data, node_flags):
    """(task, classic pre-norm 1+1 model, NODE model holding the classic model's weights), float64, eval."""
    torch.manual_seed(0)
    task, classic, _ = build(data, *CLASSIC_PRENORM)
    _, node, _ = build(data, *CLASSIC_PRENORM, *node_flags)
    # The NODE block keeps the layer's sub-layers under ``ode.func``, with fairseq's own names.
    weights = {name.replace(".ode.func.", "."): value for name, value in node.state_dict().items()}
    assert weights.keys() == classic.state_dict().keys()  # the same parameters, no more, no fewer
    node.load_state_dict({name: classic.state_dict()[name.replace(".ode.func.", ".")] for name in node.state_dict()})
    return task, classic.double().eval(), node.double().eval()


def real_logits(model, sample):
    """Log-probabilities at the target's real positions (fairseq's layers move padding, NODE blocks do not)."""
    logits, _ = model(**sample["net_input"])
    real = sample["target"].ne(model.decoder.padding_idx)
    return model.get_normalized_probs((logits, None), log_probs=True)[real]


def real_encoder_out(model, sample):
    tokens = sample["net_input"]["src_tokens"]
    out = model.encoder(tokens, sample["net_input"]["src_lengths"])["encoder_out"][0]  # S x B x C
    return out[tokens.ne(model.encoder.padding_idx).t()]


@pytest.mark.parametrize("sides", SIDES.values(), ids=SIDES.keys())
def test_one_euler_step_is_fairseqs_prenorm_layer(reverse_data, sides):
    task, classic, node = twins(reverse_data, [*sides, "--node-function", "layer", *euler(1)])
    sample = batch(task)
    with torch.no_grad():
        if "--node-encoder" in sides:
            torch.testing.assert_close(real_encoder_out(node, sample), real_encoder_out(classic, sample),
                                       rtol=0, atol=1e-6)
        torch.testing.assert_close(real_logits(node, sample), real_logits(classic, sample), rtol=0, atol=1e-6)
    assert all(block.stats.nfe_forward > 0 for block in node.node_blocks().values())


class ScaledSteps(nn.Module):
    """k applications of one fairseq layer, each adding 1/k of its update: Euler's k steps by hand."""

    def __init__(self, layer, steps):
        super().__init__()
        self.layer, self.steps = layer, steps

    def forward(self, x, *args, **kwargs):
        extra = ()
        for _ in range(self.steps):
            out = self.layer(x, *args, **kwargs)
            new, extra = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
            x = x + (new - x) / self.steps
        return (x, *extra) if extra else x


@pytest.mark.parametrize("sides", SIDES.values(), ids=SIDES.keys())
def test_k_euler_steps_are_k_shared_layers_with_updates_scaled_by_1_over_k(reverse_data, sides):
    task, classic, node = twins(reverse_data, [*sides, "--node-function", "layer", *euler(0.25)])
    if "--node-encoder" in sides:
        classic.encoder.layers[0] = ScaledSteps(classic.encoder.layers[0], 4)
    if "--node-separated-decoder" in sides:
        # The separated decoder's self-attention is a classic residual layer; only cross-attention and
        # feed-forward are the ODE: scale those alone.
        layer = classic.decoder.layers[0]
        node_layer = node.decoder.layers[0]

        def reference(x, encoder_out=None, encoder_padding_mask=None, incremental_state=None, self_attn_mask=None,
                      self_attn_padding_mask=None, **unused):
            q = layer.self_attn_layer_norm(x)
            x = x + layer.self_attn(q, q, q, key_padding_mask=self_attn_padding_mask, attn_mask=self_attn_mask,
                                    need_weights=False)[0]
            for _ in range(4):
                y = x + layer.encoder_attn(layer.encoder_attn_layer_norm(x), encoder_out, encoder_out,
                                           key_padding_mask=encoder_padding_mask, need_weights=False)[0]
                y = y + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(y))))
                x = x + (y - x) / 4
            return x, None, None

        assert node_layer.ode.func.function == "layer"
        layer.forward = reference
    else:
        classic.decoder.layers[0] = ScaledSteps(classic.decoder.layers[0], 4)
    sample = batch(task)
    with torch.no_grad():
        torch.testing.assert_close(real_logits(node, sample), real_logits(classic, sample), rtol=0, atol=1e-6)
    assert node.node_blocks()["dec"].stats.nfe_forward == 4


def test_the_chain_function_is_not_the_layer(reverse_data):
    """The default f chains the sub-layers without residuals: the same weights give other outputs."""
    task, classic, node = twins(reverse_data, [*SIDES["encoder_and_decoder"], *euler(1)])
    assert node.node_blocks()["dec"].func.function == "chain"
    sample = batch(task)
    with torch.no_grad():
        assert (real_logits(node, sample) - real_logits(classic, sample)).abs().max() > 1e-2


def test_time_dependent_layer_function_gives_every_sub_layer_t_as_input_not_state(reverse_data):
    """u = SelfAttn(LN([h, t])) (first width channels), f = u + FFN(LN([h + u, t])): t's channels are fed
    to each sub-layer afresh, never accumulated with the state."""
    _, model, _ = build(reverse_data, *TINY_DIMS, "--node-encoder", "--node-function", "layer",
                        "--node-time-dependent", "--node-augment-dims", "1", "--activation-fn", "gelu")
    func = model.node_blocks()["enc"].func.double().eval()
    h, t = torch.randn(5, 2, func.width, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    time = t.expand(5, 2, func.heads)
    q = func.self_attn_layer_norm(torch.cat([h, time], -1))
    u = func.self_attn(q, q, q, need_weights=False)[0][..., : func.width]
    hidden = func.activation_fn(func.fc1(func.final_layer_norm(torch.cat([h + u, time], -1))))
    with torch.no_grad():
        torch.testing.assert_close(func(t, h), u + func.fc2(hidden), rtol=0, atol=1e-12)
        assert not torch.allclose(func(torch.tensor(0.0, dtype=torch.float64), h), func(t, h))


@pytest.mark.parametrize("gradient", ["adjoint", "backprop"])
def test_layer_function_keeps_the_step_budget(reverse_data, gradient):
    from odeint_ext import StepBudgetExceeded

    task, model, _ = build(reverse_data, *TINY_DIMS, "--node-decoder", "--node-function", "layer", "--encoder-layers",
                           "1", "--node-rtol", "1e-9", "--node-atol", "1e-9", "--node-max-num-steps", "2",
                           "--node-gradient", gradient)
    with pytest.raises(StepBudgetExceeded, match="max_num_steps=2") as info:
        model(**batch(task)["net_input"])
    assert info.value.name == "decoder"
