"""RNODE regularisers and STEER: exact gradients (adjoint == backprop), integrals equal to an independent
fine-grid quadrature, real positions only, STEER's end times, and a regulariser that does its job."""
import pytest
import torch
from torchdiffeq import odeint

from helpers import TINY_DIMS, adjoint_and_backprop_models, assert_same_gradients, batch, build, nll, variants
from node_transformer import regularisation
from node_transformer.modules import DropoutMasks, IntegratedRegularisers, ODEBlock, SolveContext
from node_transformer.modules.regularisers import steer_end_time

REGULARISED = ["--task", "node_translation", "--node-kinetic-reg", "0.1", "--node-jacobian-reg", "0.05"]
VARIANTS = variants("decoder", "encoder", "both_augmented_time_dependent", "separated_augmented",
                    "layer_both_augmented_time_dependent")

@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def regularised_loss(model, sample):
    """The summed NLL plus the weighted regularisers, through the task's own criterion wrapper."""
    criterion = regularisation.with_regularisers(lambda m, s: (nll(m, s), 1, {}))
    loss, _, logging_output = criterion(model, sample)
    return loss, logging_output


def _gradients(model, sample, seed):
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks, probe and end time in both runs
    loss, logging_output = regularised_loss(model, sample)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}, logging_output


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_adjoint_gradients_equal_backprop_with_regularisers(reverse_data, variant):
    """Kinetic, Jacobian and STEER together, dropout on: the adjoint's gradients are backprop's."""
    flags = [*TINY_DIMS, *variant, *REGULARISED, "--node-steer", "0.2", "--activation-fn", "gelu",
             "--node-rtol", "1e-10", "--node-atol", "1e-10", "--dropout", "0.2", "--activation-dropout", "0.1"]
    task, adjoint_model, backprop_model = adjoint_and_backprop_models(reverse_data, *flags)
    sample = batch(task)
    adjoint, adjoint_log = _gradients(adjoint_model, sample, seed=1)
    backprop, backprop_log = _gradients(backprop_model, sample, seed=1)
    assert_same_gradients(adjoint, backprop)
    sides = adjoint_model.node_blocks().keys()
    for side in sides:
        for kind in ("kinetic", "jacobian"):
            value = adjoint_log[f"_node_{kind}_{side}"]
            assert value > 0
            torch.testing.assert_close(value, backprop_log[f"_node_{kind}_{side}"], rtol=1e-7, atol=0)


def test_regularisers_change_the_gradient_by_their_weight(reverse_data):
    """The loss is NLL + weight x integral: doubling the weights doubles the difference to the NLL's gradient."""
    flags = [*TINY_DIMS, *VARIANTS["decoder"], "--task", "node_translation", "--dropout", "0", "--node-gradient",
             "backprop", "--node-method", "rk4", "--node-step-size", "0.25"]
    task, base, _ = build(reverse_data, *flags)
    models = {}
    for scale in (0, 1, 2):
        _, models[scale], _ = build(reverse_data, *flags, "--node-kinetic-reg", str(0.1 * scale),
                                    "--node-jacobian-reg", str(0.05 * scale))
        models[scale].load_state_dict(base.state_dict())
        models[scale].double().train()
    sample = batch(task)
    grads = {scale: _gradients(model, sample, seed=2)[0] for scale, model in models.items()}
    for name in grads[0]:
        once, twice = grads[1][name] - grads[0][name], grads[2][name] - grads[0][name]
        torch.testing.assert_close(twice, 2 * once, rtol=1e-8, atol=1e-12)
    assert any(grads[1][n].sub(grads[0][n]).norm() > 1e-3 * grads[0][n].norm() for n in grads[0])


def _captured_solve(model, sample, side, monkeypatch):
    """Runs the regularised loss in training mode; returns its logging output and the input, context and
    probe of ``side``'s block (the encoder solves, and draws its probe, first)."""
    from node_transformer.modules import ode_block

    captured, probes = {}, []
    draw = ode_block.sample_probe
    monkeypatch.setattr(ode_block, "sample_probe", lambda h0, keep: probes.append(draw(h0, keep)) or probes[-1])
    block = model.node_blocks()[side]
    handle = block.register_forward_pre_hook(lambda module, inputs: captured.update(x=inputs[0], context=inputs[1]))
    _, logging_output = regularised_loss(model, sample)
    handle.remove()
    captured["probe"] = probes[0] if side == "enc" else probes[-1]
    return block, captured, logging_output


def _fine_grid_integrals(block, x, context, probe, points=401):
    """Kinetic and Jacobian integrals from an independent solve of the plain ODE (torchdiffeq, tolerance
    1e-12), evaluated on a fine grid of times and integrated by Simpson's rule."""
    func = block.func
    context = func.project_memory(context)
    h0 = torch.cat([x, x.new_zeros(*x.shape[:-1], block.extra_channels)], dim=-1) if block.extra_channels else x
    t0, t1 = block.settings.ts[0], block.settings.ts[-1]
    times = torch.linspace(t0, t1, points, dtype=x.dtype)
    with torch.no_grad():
        trajectory = odeint(lambda t, h: func(t, h, context, DropoutMasks()), h0, times, rtol=1e-12, atol=1e-12)
    keep = 1 if context.keep is None else context.keep
    kinetic, jacobian = [], []
    for t, h in zip(times, trajectory):
        h = h.detach().requires_grad_()
        f = func(t, h, context, DropoutMasks())
        (vjp,) = torch.autograd.grad(f, h, probe)
        kinetic.append((f.detach().pow(2).sum(-1, keepdim=True) * keep).sum())
        jacobian.append((vjp.pow(2).sum(-1, keepdim=True) * keep).sum())
    weights = torch.ones(points, dtype=x.dtype)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    weights *= (t1 - t0) / (points - 1) / 3
    return {"kinetic": (weights * torch.stack(kinetic)).sum(), "jacobian": (weights * torch.stack(jacobian)).sum()}


@pytest.mark.parametrize("method, side, variant, rtol", [
    (["--node-rtol", "1e-10", "--node-atol", "1e-10"], "dec", VARIANTS["decoder"], 1e-7),
    (["--node-rtol", "1e-10", "--node-atol", "1e-10"], "enc", VARIANTS["both_augmented_time_dependent"], 1e-7),
    (["--node-rtol", "1e-10", "--node-atol", "1e-10"], "dec", VARIANTS["both_augmented_time_dependent"], 1e-7),
    (["--node-method", "rk4", "--node-step-size", "0.05"], "dec", VARIANTS["separated_augmented"], 1e-5),
], ids=["dopri5-decoder", "dopri5-encoder-augmented-time-dependent", "dopri5-decoder-augmented-time-dependent",
        "rk4-separated"])
def test_integrals_match_fine_grid_quadrature(reverse_data, monkeypatch, method, side, variant, rtol):
    """The integrals the solve carries equal an independent quadrature of the same trajectory, and the
    position count is the number of real (non-padding) positions."""
    flags = [*TINY_DIMS, *variant, *REGULARISED, *method, "--dropout", "0", "--activation-fn", "gelu",
             "--node-gradient", "backprop"]
    task, model, _ = build(reverse_data, *flags)
    model.double().train()
    sample = batch(task)
    block, captured, logging_output = _captured_solve(model, sample, side, monkeypatch)
    context = captured["context"]
    assert context.keep is not None and context.keep.min() == 0  # the batch has padding
    expected = _fine_grid_integrals(block, captured["x"].detach(), context, captured["probe"])
    for kind in ("kinetic", "jacobian"):
        torch.testing.assert_close(logging_output[f"_node_{kind}_{side}"], expected[kind], rtol=rtol, atol=0)
    assert logging_output[f"_node_positions_{side}"] == context.keep.sum()
    assert block.pop_integrals() is None  # the criterion wrapper took them


def test_padding_adds_nothing_to_the_integrals(reverse_data):
    """A sentence alone and the same sentence padded: the same kinetic integral over the same number of
    positions; a padding position's integrands are zero whatever the probe holds there."""
    task, model, _ = build(reverse_data, *TINY_DIMS, *VARIANTS["encoder"], *REGULARISED, "--dropout", "0")
    model.double().train()
    sentence = batch(task, size=1)["net_input"]["src_tokens"]
    padded = torch.cat([torch.full((1, 4), task.source_dictionary.pad()), sentence], dim=1)
    block = model.node_blocks()["enc"]
    totals = []
    for tokens in (sentence, padded):
        model.encoder(tokens, torch.tensor([sentence.shape[1]]))
        integrals = block.pop_integrals()
        totals.append((integrals.totals["kinetic"], integrals.positions))
    torch.testing.assert_close(totals[1][0], totals[0][0], rtol=1e-9, atol=0)
    assert totals[0][1] == totals[1][1] == sentence.shape[1]

    func = IntegratedRegularisers(block.func, ("kinetic", "jacobian"))
    width, length = block.func.width, padded.shape[1]
    keep = torch.ones(length, 1, 1, dtype=torch.float64)
    keep[:4] = 0
    y = func.initial_state(torch.randn(length, 1, width, dtype=torch.float64) * keep)
    padding_mask = (keep == 0).view(1, length)
    rates = func(torch.tensor(0.0, dtype=torch.float64), y,
                 SolveContext(keep=keep, self_attn_padding_mask=padding_mask), DropoutMasks(),
                 torch.randn(length, 1, width, dtype=torch.float64))
    assert rates[:4].abs().max() == 0 and rates[4:, :, width:].min() > 0


def test_steer_draws_end_times_in_its_interval_and_only_in_training(reverse_data):
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ends = torch.stack([steer_end_time(ts, 0.25)[-1] for _ in range(2000)])
    assert ends.min() >= 0.75 and ends.max() <= 1.25 and ends.max() - ends.min() > 0.45
    assert abs(float(ends.mean()) - 1.0) < 0.02
    assert torch.equal(steer_end_time(ts, 0.0), ts)

    flags = [*TINY_DIMS, *VARIANTS["decoder"], "--dropout", "0"]
    task, plain, _ = build(reverse_data, *flags)
    _, steered, _ = build(reverse_data, *flags, "--node-steer", "0.4")
    steered.load_state_dict(plain.state_dict())
    sample = batch(task)
    net_input = sample["net_input"]
    plain.eval(), steered.eval()
    with torch.no_grad():
        torch.testing.assert_close(steered(**net_input)[0], plain(**net_input)[0], rtol=0, atol=0)
    steered.train()
    with torch.no_grad():
        outputs = [steered(**net_input)[0] for _ in range(3)]
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[1], outputs[2])


def test_kinetic_regulariser_lowers_the_kinetic_energy(reverse_data):
    """Twenty Adam updates on one batch: with weight 1 the kinetic energy per position falls well below
    where the same updates leave it with weight 0 (measured, not added to the loss)."""
    flags = [*TINY_DIMS, *VARIANTS["decoder"], "--task", "node_translation", "--dropout", "0",
             "--node-method", "rk4", "--node-step-size", "0.25", "--node-gradient", "backprop"]
    task, base, _ = build(reverse_data, *flags)
    sample = batch(task, size=20)
    energies = {}
    for weight in ("0", "1"):
        _, model, _ = build(reverse_data, *flags, "--node-kinetic-reg", weight)
        model.load_state_dict(base.state_dict())
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(20):
            optimizer.zero_grad()
            loss, log = regularised_loss(model, sample)
            (loss / log["_node_positions_dec"]).backward()
            optimizer.step()
        energies[weight] = float(log["_node_kinetic_dec"] / log["_node_positions_dec"])
    assert energies["1"] < 0.3 * energies["0"], energies


def test_training_with_regularisers_needs_the_node_task(reverse_data):
    task, model, _ = build(reverse_data, *TINY_DIMS, *VARIANTS["decoder"], "--node-jacobian-reg", "0.1")
    model.eval()
    model(**batch(task)["net_input"])  # generation and scoring work with any task
    model.train()
    with pytest.raises(ValueError, match="--node-jacobian-reg .*--task node_translation"):
        model(**batch(task)["net_input"])


@pytest.mark.parametrize("kind", ["kinetic", "jacobian"])
def test_integral_gradients_equal_finite_differences(reverse_data, monkeypatch, kind):
    """The regularisers' gradients are right, not merely equal in both modes: autograd's gradient of each
    integral equals central differences, entry by entry, for every matrix of f (float64, rk4, a fixed
    probe). The Jacobian term's gradient needs the vector-Jacobian product's own graph (second
    derivatives of f). tanh and the separated decoder keep every operation of f in float64 (fairseq's
    GELU and its self-attention's softmax compute in float32, too coarse for finite differences)."""
    from node_transformer.modules import ode_block

    flags = [*TINY_DIMS, *VARIANTS["separated_augmented"], "--node-time-dependent", "--task", "node_translation",
             f"--node-{kind}-reg", "1", "--dropout", "0", "--activation-fn", "tanh", "--node-method", "rk4",
             "--node-step-size", "0.25", "--node-gradient", "backprop"]
    task, model, _ = build(reverse_data, *flags)
    model.double().train()
    sample = batch(task)
    probes = {}
    monkeypatch.setattr(ode_block, "sample_probe", lambda h0, keep: probes.setdefault(
        "probe", torch.randn(h0.shape, dtype=h0.dtype, generator=torch.Generator().manual_seed(7)) * keep))
    block = model.node_blocks()["dec"]

    def integral():
        model(**sample["net_input"])
        return block.pop_integrals().totals[kind]

    model.zero_grad()
    integral().backward()
    matrices = [(name, p) for name, p in model.named_parameters() if name.startswith("decoder.layers.0.ode.func.")
                and p.dim() == 2]
    assert len(matrices) == 6
    for name, param in matrices:
        for index in [(0, 1), (2, 3)]:
            with torch.no_grad():
                original = param[index].item()
                param[index] = original + 1e-6
                above = integral()
                param[index] = original - 1e-6
                below = integral()
                param[index] = original
            numeric = (above - below) / 2e-6
            assert abs(numeric) > 1e-3, (name, index)  # a gradient worth comparing
            torch.testing.assert_close(param.grad[index], numeric, rtol=1e-6, atol=0, msg=f"{name}{index}")
