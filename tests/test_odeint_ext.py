"""odeint_ext: adjoint gradients of every tensor argument equal backpropagation through the solver."""
import time
from typing import NamedTuple

import pytest
import torch
from torch import nn

from odeint_ext import (
    ADAPTIVE_METHODS,
    FIXED_GRID_METHODS,
    NonFiniteState,
    ODESolveError,
    SolveStats,
    StepBudgetExceeded,
    StepSizeUnderflow,
    odeint_ext,
)

DIM = 5
T = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
# Tolerances tight enough that the adjoint's own solve error is far below the 1e-6 we compare at.
SOLVERS = {
    "dopri5": dict(method="dopri5", rtol=1e-11, atol=1e-11),
    "rk4": dict(method="rk4", options={"step_size": 0.01}),
}


class AttentionLike(nn.Module):
    """f(t, y, q, k, v, mask, none, scale): attention of y over (k, v) plus a query term."""

    def __init__(self, time_dependent=False):
        super().__init__()
        self.proj = nn.Linear(DIM, DIM)
        self.time_dependent = time_dependent

    def forward(self, t, y, q=None, k=None, v=None, mask=None, nothing=None, scale=1.0):
        assert nothing is None
        h = self.proj(y)
        if q is not None:
            h = h + q
        if k is not None:
            scores = h @ k.transpose(-1, -2) * scale
            if mask is not None:
                scores = scores.masked_fill(mask, float("-inf"))
            h = h + torch.softmax(scores, dim=-1) @ v
        if self.time_dependent:
            h = h * torch.cos(3 * t)
        return torch.tanh(h) * 0.8


def _leaves(*tensors):
    return [x.detach().clone().requires_grad_(True) for x in tensors]


def _grads(func, y0, args, adjoint, solver, extra_params=()):
    out = odeint_ext(func, y0, T, args, adjoint=adjoint, **solver)
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    (out * weights).sum().backward()
    leaf_args = _unique([a for a in args if isinstance(a, torch.Tensor) and a.requires_grad and a.is_leaf])
    inputs = [y0, *leaf_args, *func.parameters(), *extra_params]
    grads = [x.grad.clone() for x in inputs]
    for x in inputs:
        x.grad = None
    return grads


def _unique(tensors):
    return list({id(x): x for x in tensors}.values())


def _assert_same(adj, bp):
    assert len(adj) == len(bp)
    for a, b in zip(adj, bp):
        assert b.abs().max() > 0, "the reference gradient is zero: the test would not notice a lost gradient"
        rel = (a - b).norm() / b.norm()
        assert rel <= 1e-6, f"adjoint gradient differs from backprop: relative error {rel:.2e}"


def _random(*shape):
    return torch.randn(*shape)


@pytest.fixture(autouse=True)
def _float64():
    """Every test here runs in float64, and the default goes back afterwards: set at import, it would leak
    into every later module of a full run, so that a full run and a single-file run would test different
    things. Tensors built at import (T, parametrize lists) say float64 themselves."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_three_tensor_args(solver):
    func = AttentionLike()
    y0, q, k, v = _leaves(_random(3, DIM), _random(3, DIM), _random(4, DIM), _random(4, DIM))
    args = (q, k, v)
    _assert_same(_grads(func, y0, args, True, solver), _grads(func, y0, args, False, solver))


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_shared_tensor_passed_as_key_and_value(solver):
    func = AttentionLike()
    y0, kv = _leaves(_random(3, DIM), _random(4, DIM))
    args = (None, kv, kv)
    _assert_same(_grads(func, y0, args, True, solver), _grads(func, y0, args, False, solver))


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_bool_mask_none_and_plain_value_args(solver):
    func = AttentionLike()
    y0, q, k, v = _leaves(_random(3, DIM), _random(3, DIM), _random(4, DIM), _random(4, DIM))
    mask = torch.tensor([[False, False, True, True], [False, True, False, True], [False, False, False, True]])
    args = (q, k, v, mask, None, 0.5)
    adj = _grads(func, y0, args, True, solver)
    _assert_same(adj, _grads(func, y0, args, False, solver))
    unmasked = _grads(func, y0, (q, k, v, None, None, 0.5), True, solver)
    assert (adj[2] - unmasked[2]).abs().max() > 1e-3, "the mask argument did not reach func"


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_time_dependent_function(solver):
    func = AttentionLike(time_dependent=True)
    y0, k, v = _leaves(_random(3, DIM), _random(4, DIM), _random(4, DIM))
    args = (None, k, v)
    _assert_same(_grads(func, y0, args, True, solver), _grads(func, y0, args, False, solver))


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_encoder_output_from_upstream_layer_gets_its_gradient(solver):
    """The 2019 bug: the encoder output is a non-leaf tensor; its producer must learn from the loss."""
    func = AttentionLike()
    encoder = nn.Linear(DIM, DIM)
    src, y0 = _random(4, DIM), _leaves(_random(3, DIM))[0]

    def grads(adjoint):
        memory = torch.tanh(encoder(src))
        return _grads(func, y0, (None, memory, memory), adjoint, solver, extra_params=list(encoder.parameters()))

    adj, bp = grads(True), grads(False)
    _assert_same(adj, bp)
    encoder_weight_grad = adj[-2]
    assert encoder_weight_grad.abs().max() > 1e-6


class Memory(NamedTuple):
    keys: torch.Tensor
    values: torch.Tensor


class NestedArgs(nn.Module):
    """f(t, y, (q, Memory(k, v))): the AttentionLike function with its inputs in (named) tuples."""

    def __init__(self):
        super().__init__()
        self.inner = AttentionLike()

    def forward(self, t, y, inputs):
        q, memory = inputs
        return self.inner(t, y, q, memory.keys, memory.values)


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_tensors_inside_named_tuples_get_their_gradients(solver):
    func = NestedArgs()
    encoder = nn.Linear(DIM, DIM)
    src, (y0, q, values) = _random(4, DIM), _leaves(_random(3, DIM), _random(3, DIM), _random(4, DIM))

    def grads(adjoint):
        keys = torch.tanh(encoder(src))  # non-leaf, as an encoder output is
        args = ((q, Memory(keys=keys, values=values)),)
        return _grads(func, y0, args, adjoint, solver, extra_params=[q, values, *encoder.parameters()])

    _assert_same(grads(True), grads(False))


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
def test_arguments_computed_from_each_other_and_from_func_parameters(solver):
    """Keys projected by func's own layer, values computed from the keys: torchdiffeq alone would count
    the shared paths twice (once inside the adjoint, once on the way back out)."""
    func = NestedArgs()
    encoder = nn.Linear(DIM, DIM)
    src, y0, q = _random(4, DIM), *_leaves(_random(3, DIM), _random(3, DIM))

    def grads(adjoint):
        keys = func.inner.proj(torch.tanh(encoder(src)))  # depends on func's parameters
        args = ((q, Memory(keys=keys, values=keys * 2)),)
        return _grads(func, y0, args, adjoint, solver, extra_params=[q, *encoder.parameters()])

    _assert_same(grads(True), grads(False))


def test_adjoint_can_backward_twice_through_a_retained_graph():
    func = AttentionLike()
    y0, k = _leaves(_random(3, DIM), _random(4, DIM))
    out = odeint_ext(func, y0, T, (None, k, k), method="rk4", options={"step_size": 0.1})
    out.sum().backward(retain_graph=True)
    first = k.grad.clone()
    out.sum().backward()
    torch.testing.assert_close(k.grad, 2 * first)


def test_gradcheck_of_adjoint():
    func = AttentionLike()
    for p in func.parameters():
        p.requires_grad_(False)
    y0, q, k, v = _leaves(_random(2, DIM), _random(2, DIM), _random(3, DIM), _random(3, DIM))

    def solve(y0, q, k, v):
        return odeint_ext(func, y0, T, (q, k, v), method="rk4", options={"step_size": 0.05})

    assert torch.autograd.gradcheck(solve, (y0, q, k, v), atol=1e-6, rtol=1e-4)


class Counted(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, t, y, *args):
        self.calls += 1
        return self.inner(t, y, *args)


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "rk4"])
def test_nfe_counts_equal_function_calls(method):
    func = Counted(AttentionLike())
    y0, k, v = _leaves(_random(3, DIM), _random(4, DIM), _random(4, DIM))
    stats = SolveStats()
    options = {"step_size": 0.1} if method == "rk4" else None
    out = odeint_ext(func, y0, T, (None, k, v), method=method, options=options, stats=stats)
    forward_calls = func.calls
    assert forward_calls > 0 and stats.nfe_forward == forward_calls and stats.nfe_backward == 0
    out.sum().backward()
    backward_calls = func.calls - forward_calls
    assert backward_calls > 0 and stats.nfe_backward == backward_calls
    assert stats.nfe_forward == forward_calls and stats.solves == 1
    assert stats.steps_forward > 0 and stats.steps_backward > 0


def test_backprop_mode_counts_no_backward_nfe():
    func = Counted(AttentionLike())
    y0 = _leaves(_random(3, DIM))[0]
    stats = SolveStats()
    odeint_ext(func, y0, T, adjoint=False, stats=stats).sum().backward()
    assert stats.nfe_forward == func.calls and stats.nfe_backward == 0


def test_adjoint_options_reach_the_adjoint_solve():
    norm_calls = []

    def norm(state):
        norm_calls.append(len(state))
        return max(s.abs().max() for s in state)

    func = AttentionLike()
    y0 = _leaves(_random(3, DIM))[0]
    out = odeint_ext(func, y0, T, adjoint_options={"norm": norm})
    assert not norm_calls, "the adjoint norm was used by the forward solve"
    out.sum().backward()
    # The adjoint state is (vjp_t, y, vjp_y, one vjp per parameter).
    assert norm_calls and norm_calls[0] == 3 + len(list(func.parameters()))


def test_seminorm_adjoint_keeps_gradients():
    func = AttentionLike()
    y0, k, v = _leaves(_random(3, DIM), _random(4, DIM), _random(4, DIM))
    args = (None, k, v)
    tight = dict(method="dopri5", rtol=1e-11, atol=1e-11)
    plain = _grads(func, y0, args, True, tight)
    seminorm = _grads(func, y0, args, True, dict(tight, adjoint_options={"norm": "seminorm"}))
    _assert_same(seminorm, plain)


class Stiff(nn.Module):
    def __init__(self):
        super().__init__()
        self.rate = nn.Parameter(torch.tensor(-1.0e5))

    def forward(self, t, y):
        return self.rate * (y - torch.cos(t))


def test_step_budget_in_forward_solve():
    y0 = torch.ones(4)
    started = time.monotonic()
    with pytest.raises(StepBudgetExceeded) as info:
        odeint_ext(Stiff(), y0, T, rtol=1e-8, atol=1e-8, options={"max_num_steps": 20}, name="stiff")
    assert time.monotonic() - started < 30
    err = info.value
    assert isinstance(err, RuntimeError) and not isinstance(err, AssertionError)
    assert err.direction == "forward" and err.steps == 21 and err.nfe > 0 and 0.0 <= err.t < 1.0
    assert "max_num_steps=20" in str(err) and "stiff forward solve" in str(err) and err.name == "stiff"


def test_step_budget_in_adjoint_solve():
    """Forward solve is easy; the adjoint gets a budget too small for it and must raise, not hang."""
    func = AttentionLike()
    y0 = _leaves(_random(3, DIM))[0]
    out = odeint_ext(
        func, y0, T, rtol=1e-9, atol=1e-9, options={"max_num_steps": 500}, adjoint_options={"max_num_steps": 2}
    )
    started = time.monotonic()
    with pytest.raises(StepBudgetExceeded) as info:
        out.sum().backward()
    assert time.monotonic() - started < 30
    assert info.value.direction == "backward" and info.value.steps == 3


def test_adjoint_inherits_forward_budget():
    func = AttentionLike()
    y0 = _leaves(_random(3, DIM))[0]
    # A tiny first step makes the adjoint take ~10 steps where the forward solve takes 2.
    stats = SolveStats()
    out = odeint_ext(func, y0, T, options={"max_num_steps": 5}, adjoint_options={"first_step": 1e-4}, stats=stats)
    assert stats.steps_forward <= 5
    with pytest.raises(StepBudgetExceeded) as info:
        out.sum().backward()
    assert info.value.direction == "backward"


def test_step_size_underflow_is_reported():
    class Blowup(nn.Module):
        def forward(self, t, y):
            return y**2  # y' = y^2, y(0)=1 explodes at t=1

    with pytest.raises(StepSizeUnderflow) as info:
        odeint_ext(Blowup(), torch.ones(1), torch.tensor([0.0, 2.0]), rtol=1e-6, atol=1e-6)
    assert isinstance(info.value, ODESolveError) and abs(info.value.t - 1.0) < 1e-3


def test_non_finite_state_is_reported():
    class Nan(nn.Module):
        def forward(self, t, y):
            return torch.where(t > 0.3, torch.full_like(y, float("nan")), y)

    with pytest.raises(ODESolveError):
        odeint_ext(Nan(), torch.ones(2), T, options={"max_num_steps": 100})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(t=torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)), "t must be strictly"),
        (dict(t=torch.tensor([[0.0, 1.0]], dtype=torch.float64)), "t must be 1-D"),
        (dict(t=torch.tensor([0.0, 0.0], dtype=torch.float64)), "t must be strictly"),
        (dict(t=torch.tensor([], dtype=torch.float64)), "t must hold at least one time"),
        (dict(rtol=0.0), "rtol"),
        (dict(atol=-1e-3), "atol"),
        (dict(method="dopri4"), "method='dopri4'"),
        (dict(y0=torch.ones(3, dtype=torch.long)), "y0 must be a floating"),
        (dict(func=lambda t, y: y), "func must be an nn.Module"),
        (dict(options={"max_num_steps": 0}), "max_num_steps"),
        (dict(method="rk4", options={"max_num_steps": 10}), "max_num_steps"),
        (dict(method="rk4", options={"step_size": -0.1}), "step_size"),
        (dict(args=torch.ones(1, dtype=torch.float64)), "args must be a tuple"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, name):
    call = dict(func=AttentionLike(), y0=torch.ones(2, DIM), t=T)
    call.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=name.replace("[", r"\[").replace("(", r"\(")):
        odeint_ext(**call)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        odeint_ext(AttentionLike(), torch.ones(2, DIM), T, method="nope")
    assert "dopri5" in str(info.value) and "rk4" in str(info.value)
    assert "dopri5" in ADAPTIVE_METHODS and "rk4" in FIXED_GRID_METHODS


def test_plain_function_allowed_without_adjoint():
    out = odeint_ext(lambda t, y, a: -a * y, torch.ones(2), T, (2.0,), adjoint=False, rtol=1e-9, atol=1e-9)
    assert torch.allclose(out[-1], torch.exp(torch.tensor(-2.0)).expand(2), rtol=1e-6)
