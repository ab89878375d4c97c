"""odeint_ext as a drop-in for torchdiffeq, checked against torchdiffeq itself on the same problems: the
user's step callbacks (and torchdiffeq's warnings about them), tuple states, a single time point and
events, each with odeint_ext's own guarantees (argument gradients, NFE, the whole-solve step budget)."""
import copy
import math
import warnings

import pytest
import torch
import torchdiffeq
from torch import nn

from odeint_ext import SolveStats, StepBudgetExceeded, odeint_ext, odeint_event_ext

T = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
TIGHT = dict(rtol=1e-10, atol=1e-10)


def _leaf(x):
    return x.detach().clone().requires_grad_(True)


class Recording(nn.Module):
    """A small nonlinear field that records every call torchdiffeq makes to it: evaluations and each of
    the six step callbacks. ``shift`` comes as an argument (odeint_ext) or bound (``self.bound``,
    torchdiffeq's way: then it must be among the adjoint parameters)."""

    def __init__(self, dim=3):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(dim, dim).double()
        self.bound = None
        self.calls = []

    def forward(self, t, y, shift=None):
        self.calls.append("f")
        shift = self.bound if shift is None else shift
        return torch.tanh(self.linear(y) + shift) * torch.cos(t)

    def _record(self, kind):
        def callback(t0, y0, dt):
            self.calls.append((kind, float(t0), float(dt)))
        return callback

    def __getattr__(self, name):
        if name.startswith("callback_"):
            return self._record(name[len("callback_"):])
        return super().__getattr__(name)


def _with_callbacks(names):
    """A Recording whose class defines exactly the callbacks NAMES (torchdiffeq looks them up with getattr)."""
    class Some(Recording):
        def __getattr__(self, name):
            if name in names:
                return self._record(name[len("callback_"):])
            return nn.Module.__getattr__(self, name)
    return Some()


ALL_CALLBACKS = ["callback_step", "callback_accept_step", "callback_reject_step", "callback_step_adjoint",
                 "callback_accept_step_adjoint", "callback_reject_step_adjoint"]


@pytest.mark.parametrize("method, options", [("dopri5", {"first_step": 0.9}), ("bosh3", None),
                                             ("rk4", {"step_size": 0.1})])
def test_user_callbacks_are_called_as_torchdiffeq_calls_them_forward_and_adjoint(method, options):
    """The same calls, in the same order, with the same times and steps (a first step of 0.9 is rejected,
    so the reject callbacks run too), and the same gradients."""
    ours = _with_callbacks(ALL_CALLBACKS)
    theirs = copy.deepcopy(ours)
    y0, shift = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64), torch.tensor([0.1, 0.0, -0.1], dtype=torch.float64)
    shift_ours, shift_theirs = _leaf(shift), _leaf(shift)
    theirs.bound = shift_theirs
    kwargs = dict(method=method, options=options, **TIGHT)
    with warnings.catch_warnings(record=True) as their_warnings:
        warnings.simplefilter("always")
        torchdiffeq.odeint_adjoint(theirs, _leaf(y0), T, adjoint_params=(*theirs.parameters(), shift_theirs),
                                   **kwargs).sum().backward()
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        odeint_ext(ours, _leaf(y0), T, (shift_ours,), **kwargs).sum().backward()
    assert ours.calls == theirs.calls
    kinds = {call[0] for call in ours.calls if call != "f"}
    expected = {"step", "step_adjoint"} | ({"accept_step", "accept_step_adjoint"} if method != "rk4" else set())
    assert expected <= kinds
    if method == "dopri5":
        assert "reject_step" in kinds
    torch.testing.assert_close(shift_ours.grad, shift_theirs.grad, rtol=1e-9, atol=0)
    assert [str(w.message) for w in our_warnings] == [str(w.message) for w in their_warnings]


def test_an_adjoint_budget_error_in_decreasing_time_reports_the_users_time():
    func = Recording()
    t = torch.tensor([1.0, 0.25], dtype=torch.float64)
    y = odeint_ext(func, _leaf(torch.ones(3, dtype=torch.float64)), t, (torch.zeros(3, dtype=torch.float64),),
                   adjoint_options={"max_num_steps": 2}, **TIGHT)
    with pytest.raises(StepBudgetExceeded) as info:
        y.sum().backward()
    assert info.value.direction == "backward" and 0.25 <= info.value.t <= 1.0


def test_per_component_tolerances_of_a_tuple_state_are_torchdiffeqs():
    x0, v0, drive = _tuple_problem()
    ours, theirs = Coupled(), Coupled()
    theirs.load_state_dict(ours.state_dict())
    theirs.bound = drive
    tolerances = dict(rtol=(1e-4, 1e-9), atol=(1e-4, 1e-9))
    stats = SolveStats()
    solution = odeint_ext(ours, (x0, v0), T, (drive,), adjoint=False, stats=stats, **tolerances)
    reference = torchdiffeq.odeint(theirs, (x0, v0), T, **tolerances)
    assert all(torch.equal(a, b) for a, b in zip(solution, reference)) and stats.nfe_forward == theirs.evaluations
    with pytest.raises(ValueError, match=r"rtol\[1\] must be a positive"):
        odeint_ext(ours, (x0, v0), T, (drive,), rtol=(1e-4, 0.0))


def test_budget_still_holds_with_user_callbacks():
    func = _with_callbacks(["callback_step"])
    with pytest.raises(StepBudgetExceeded, match="max_num_steps=3"):
        odeint_ext(func, torch.ones(3, dtype=torch.float64), T, (torch.zeros(3, dtype=torch.float64),),
                   options={"max_num_steps": 3}, **TIGHT)
    # odeint_ext refuses the 4th step before the user's callback sees it: the user saw the 3 steps taken
    assert sum(1 for call in func.calls if call[0] == "step") == 3


def _warnings_of(solve):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solve()
    return [str(w.message) for w in caught if "callback" in str(w.message)]


@pytest.mark.parametrize("method, options, callbacks", [
    ("scipy_solver", {"solver": "RK45"}, []),  # no callback set: no warning (odeint_ext's own are not set there)
    ("scipy_solver", {"solver": "RK45"}, ["callback_step"]),
    ("rk4", {"step_size": 0.25}, ["callback_accept_step"]),
])
def test_torchdiffeqs_warnings_about_callbacks_stay_true(method, options, callbacks):
    y0, shift = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    ours, theirs = _with_callbacks(callbacks), _with_callbacks(callbacks)
    theirs.bound = shift
    expected = _warnings_of(lambda: torchdiffeq.odeint(theirs, y0, T, method=method, options=options))
    got = _warnings_of(lambda: odeint_ext(ours, y0, T, (shift,), method=method, options=options, adjoint=False))
    assert got == expected
    assert bool(expected) == bool(callbacks)


class Coupled(nn.Module):
    """A tuple state (position x: 2 x 3, velocity v: 3) whose derivative is a tuple, with a tensor argument."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.linear = nn.Linear(3, 3).double()
        self.bound = None
        self.evaluations = 0

    def forward(self, t, state, drive=None):
        self.evaluations += 1
        if isinstance(state, torch.Tensor):  # a tensor state (the single-time test): the velocity alone
            return torch.tanh(self.linear(state)) - (self.bound if drive is None else drive) * state
        x, v = state
        drive = self.bound if drive is None else drive
        return v.expand_as(x) * 0.5, torch.tanh(self.linear(v) + x.sum(0)) - drive * v


def _tuple_problem():
    x0 = torch.tensor([[0.1, 0.2, -0.3], [0.0, 0.4, 0.1]], dtype=torch.float64)
    v0 = torch.tensor([0.5, -0.1, 0.2], dtype=torch.float64)
    return x0, v0, torch.tensor([0.3, 0.1, 0.2], dtype=torch.float64)


def _tuple_loss(solution):
    xs, vs = solution
    return (xs * torch.linspace(-1, 1, xs.numel(), dtype=xs.dtype).view_as(xs)).sum() + (vs ** 2).sum()


@pytest.mark.parametrize("method, options", [("dopri5", None), ("rk4", {"step_size": 0.05})])
@pytest.mark.parametrize("adjoint", [True, False])
def test_tuple_states_solve_like_torchdiffeq_with_every_gradient(method, options, adjoint):
    x0, v0, drive = _tuple_problem()
    ours, theirs = Coupled(), Coupled()
    theirs.load_state_dict(ours.state_dict())
    our_inputs, their_inputs = [_leaf(z) for z in (x0, v0, drive)], [_leaf(z) for z in (x0, v0, drive)]
    theirs.bound = their_inputs[2]
    kwargs = dict(method=method, options=options, **TIGHT)
    stats = SolveStats()
    solution = odeint_ext(ours, tuple(our_inputs[:2]), T, (our_inputs[2],), adjoint=adjoint, stats=stats, **kwargs)
    if adjoint:
        reference = torchdiffeq.odeint_adjoint(theirs, tuple(their_inputs[:2]), T,
                                               adjoint_params=(*theirs.parameters(), their_inputs[2]), **kwargs)
    else:
        reference = torchdiffeq.odeint(theirs, tuple(their_inputs[:2]), T, **kwargs)
    assert isinstance(solution, tuple) and len(solution) == 2
    assert solution[0].shape == (3, 2, 3) and solution[1].shape == (3, 3)
    for got, expected in zip(solution, reference):
        assert torch.equal(got, expected)  # the same steps: bit-identical
    assert stats.nfe_forward == ours.evaluations == theirs.evaluations
    _tuple_loss(solution).backward()
    _tuple_loss(reference).backward()
    for got, expected in zip([*our_inputs, *ours.parameters()], [*their_inputs, *theirs.parameters()]):
        torch.testing.assert_close(got.grad, expected.grad, rtol=1e-9, atol=1e-12)
    if adjoint:
        assert stats.nfe_backward > 0


def test_tuple_state_gradients_equal_backprop_with_an_argument_computed_from_the_state():
    """The argument passed to f is computed from y0 and from f's own parameters: the adjoint must not count
    their shared path twice (odeint_ext's argument leaves), now with a tuple state."""
    x0, v0, _ = _tuple_problem()
    grads = {}
    for adjoint in (True, False):
        func = Coupled()
        inputs = [_leaf(x0), _leaf(v0)]
        drive = func.linear(inputs[1]).sigmoid()
        solution = odeint_ext(func, tuple(inputs), T, (drive,), adjoint=adjoint, **TIGHT)
        _tuple_loss(solution).backward()
        grads[adjoint] = [z.grad for z in (*inputs, *func.parameters())]
    for got, expected in zip(grads[True], grads[False]):
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-10)


def test_tuple_states_keep_the_step_budget_and_name_a_bad_component():
    x0, v0, drive = _tuple_problem()
    with pytest.raises(StepBudgetExceeded, match="max_num_steps=2"):
        odeint_ext(Coupled(), (x0, v0), T, (drive,), options={"max_num_steps": 2}, **TIGHT)
    with pytest.raises(TypeError, match=r"y0\[1\] must be a floating tensor"):
        odeint_ext(Coupled(), (x0, torch.ones(3, dtype=torch.long)), T, (drive,))
    with pytest.raises(TypeError, match=r"y0\[0\] must be a torch.Tensor"):
        odeint_ext(Coupled(), ([0.0], v0), T, (drive,))
    with pytest.raises(ValueError, match="empty tuple"):
        odeint_ext(Coupled(), (), T, (drive,))


@pytest.mark.parametrize("state", ["tensor", "tuple"])
def test_a_single_time_point_returns_y0_without_a_solve(state):
    x0, v0, drive = _tuple_problem()
    func = Coupled()
    y0 = (_leaf(x0), _leaf(v0)) if state == "tuple" else _leaf(v0)
    stats = SolveStats()
    t = torch.tensor([0.3], dtype=torch.float64)
    solution = odeint_ext(func, y0, t, (drive,), stats=stats)
    theirs = copy.deepcopy(func)
    theirs.bound = drive
    reference = torchdiffeq.odeint(theirs, y0, t)  # torchdiffeq evaluates f for its first step, then returns y0
    for got, expected in zip(_as_tuple(solution), _as_tuple(reference)):
        assert got.shape[0] == 1 and torch.equal(got, expected)
    assert theirs.evaluations > 0 and func.evaluations == 0 and stats.nfe_forward == 0 and stats.solves == 0
    _as_tuple(solution)[-1].sum().backward()
    assert torch.equal(_as_tuple(y0)[-1].grad, torch.ones(3, dtype=torch.float64))
    _as_tuple(solution)[-1].data.add_(1.0)  # a new tensor, as torchdiffeq's: y0 is not changed through it
    assert torch.equal(_as_tuple(y0)[-1], v0)


def _as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


class Decay(nn.Module):
    """dy/dt = -k y + drive: with drive 0, y = y0 exp(-k t), so y crosses 0.5 at t* = ln(y0 / 0.5) / k."""

    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
        self.bound = None
        self.evaluations = 0

    def forward(self, t, y, drive=None):
        self.evaluations += 1
        drive = self.bound if drive is None else drive
        return -self.k * y + drive


def crosses_half(t, y):
    return y.sum() - 0.5


@pytest.mark.parametrize("adjoint", [True, False])
def test_event_time_and_its_gradients_are_analytic_and_torchdiffeqs(adjoint):
    y0, drive, t0 = (torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64),
                     torch.tensor(0.0, dtype=torch.float64))
    ours, theirs = Decay(), Decay()
    our_inputs, their_inputs = [_leaf(z) for z in (y0, drive, t0)], [_leaf(z) for z in (y0, drive, t0)]
    theirs.bound = their_inputs[1]
    stats = SolveStats()
    event_t, solution = odeint_event_ext(ours, our_inputs[0], our_inputs[2], (our_inputs[1],), event_fn=crosses_half,
                                         adjoint=adjoint, stats=stats, **TIGHT)
    interface = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    extra = dict(adjoint_params=(theirs.k, their_inputs[1])) if adjoint else {}
    their_t, their_solution = torchdiffeq.odeint_event(theirs, their_inputs[0], their_inputs[2], event_fn=crosses_half,
                                                       odeint_interface=interface, **TIGHT, **extra)
    assert torch.equal(event_t, their_t) and torch.equal(solution, their_solution)
    assert solution.shape == (2, 1)
    assert math.isclose(float(event_t), math.log(4.0) / 0.7, rel_tol=1e-8)
    assert stats.nfe_forward == theirs.evaluations > 0 and stats.solves == 1
    event_t.backward()
    their_t.backward()
    k, y_start = 0.7, 2.0
    analytic = {"y0": 1 / (k * y_start), "k": -math.log(4.0) / k ** 2, "t0": 1.0,
                "drive": (1 - 0.25) / k / (k * 0.5)}  # dy/d(drive) = (1 - exp(-k t*)) / k over -dy/dt = k y
    got = {"y0": our_inputs[0].grad, "k": ours.k.grad, "t0": our_inputs[2].grad, "drive": our_inputs[1].grad}
    expected = {"y0": their_inputs[0].grad, "k": theirs.k.grad, "t0": their_inputs[2].grad,
                "drive": their_inputs[1].grad}
    for name in ("y0", "k", "drive", "t0"):
        torch.testing.assert_close(got[name], expected[name], rtol=1e-7, atol=1e-12)
        assert math.isclose(float(got[name]), analytic[name], rel_tol=1e-6), (name, float(got[name]), analytic[name])


def test_events_in_reverse_time_on_a_fixed_grid_and_with_a_tuple_state():
    y0 = torch.tensor([0.25], dtype=torch.float64)
    t0 = torch.tensor(1.0, dtype=torch.float64)
    drive = torch.tensor([0.0], dtype=torch.float64)
    ours, theirs = Decay(), Decay()
    theirs.bound = drive
    kwargs = dict(method="rk4", options={"step_size": 0.01}, reverse_time=True, **TIGHT)
    event_t, solution = odeint_event_ext(ours, y0, t0, (drive,), event_fn=crosses_half, **kwargs)
    their_t, their_solution = torchdiffeq.odeint_event(theirs, y0, t0, event_fn=crosses_half, **kwargs)
    assert torch.equal(event_t, their_t) and torch.equal(solution, their_solution)
    assert math.isclose(float(event_t), 1.0 - math.log(2.0) / 0.7, rel_tol=1e-4)

    x0, v0, drive = _tuple_problem()
    func = Coupled()
    event_t, (xs, vs) = odeint_event_ext(func, (x0, v0), torch.tensor(0.0, dtype=torch.float64), (drive,),
                                         event_fn=lambda t, state: state[0].sum() - 1.0, **TIGHT)
    assert xs.shape == (2, 2, 3) and vs.shape == (2, 3) and float(event_t) > 0
    assert math.isclose(float(xs[-1].sum()), 1.0, abs_tol=1e-8)


def test_an_event_that_never_comes_hits_the_step_budget():
    y0 = torch.tensor([0.25], dtype=torch.float64)
    with pytest.raises(StepBudgetExceeded, match="max_num_steps=50"):
        odeint_event_ext(Decay(), y0, torch.tensor(0.0, dtype=torch.float64), (torch.tensor([0.0], dtype=torch.float64),),
                         event_fn=crosses_half, options={"max_num_steps": 50})


def test_bad_event_arguments_are_named():
    y0 = torch.tensor([2.0], dtype=torch.float64)
    drive = (torch.tensor([0.0], dtype=torch.float64),)
    with pytest.raises(TypeError, match="event_fn must be callable"):
        odeint_event_ext(Decay(), y0, torch.tensor(0.0, dtype=torch.float64), drive, event_fn=None)
    with pytest.raises(TypeError, match="t0 must be a floating torch.Tensor holding one time"):
        odeint_event_ext(Decay(), y0, torch.tensor([0.0, 1.0], dtype=torch.float64), drive, event_fn=crosses_half)


@pytest.mark.parametrize("adjoint", [True, False])
def test_odeints_own_event_mode_is_torchdiffeqs(adjoint):
    """odeint_ext(..., event_fn=) is torchdiffeq's odeint(..., event_fn=): the same event time and states,
    NFE counted; with t of other than two times it names the problem."""
    y0, drive = torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ours, theirs = Decay(), Decay()
    theirs.bound = drive
    stats = SolveStats()
    event_t, solution = odeint_ext(ours, y0, t, (drive,), event_fn=crosses_half, adjoint=adjoint, stats=stats, **TIGHT)
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    their_t, their_solution = solve(theirs, y0, t, event_fn=crosses_half, **TIGHT)
    assert torch.equal(event_t, their_t) and torch.equal(solution, their_solution)
    assert stats.nfe_forward == theirs.evaluations > 0
    with pytest.raises(ValueError, match="with event_fn, t must hold two times"):
        odeint_ext(ours, y0, T, (drive,), event_fn=crosses_half)


class CoupledRecording(Coupled):
    """The tuple-state field with a forward and an adjoint step callback that record what they are given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def callback_step(self, t0, y0, dt):
        self.calls.append(("step", float(t0), float(dt), tuple(tuple(y.shape) for y in y0)))

    def callback_step_adjoint(self, t0, y0, dt):
        self.calls.append(("step_adjoint", float(t0), float(dt), len(y0)))


@pytest.mark.parametrize("state", ["tensor", "tuple"])
def test_user_callbacks_in_decreasing_time_and_with_tuple_states(state):
    """torchdiffeq hands callbacks the user's time and the tuple state's components; so does odeint_ext."""
    t = T.flip(0)
    kwargs = dict(method="dopri5", options={"first_step": 0.9}, **TIGHT)
    if state == "tensor":
        ours = _with_callbacks(ALL_CALLBACKS)
        theirs = copy.deepcopy(ours)
        y0, shift = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    else:
        ours, theirs = CoupledRecording(), CoupledRecording()
        theirs.load_state_dict(ours.state_dict())
        x0, v0, shift = _tuple_problem()
        y0 = (x0, v0)
    our_shift, their_shift = _leaf(shift), _leaf(shift)
    theirs.bound = their_shift
    leaves = lambda: tuple(_leaf(c) for c in y0) if state == "tuple" else _leaf(y0)  # noqa: E731
    total = lambda solution: sum(c.sum() for c in _as_tuple(solution))  # noqa: E731
    total(torchdiffeq.odeint_adjoint(theirs, leaves(), t, adjoint_params=(*theirs.parameters(), their_shift),
                                     **kwargs)).backward()
    total(odeint_ext(ours, leaves(), t, (our_shift,), **kwargs)).backward()
    assert ours.calls == theirs.calls
    assert {call[0] for call in ours.calls if call != "f"} >= {"step", "step_adjoint"}
    torch.testing.assert_close(our_shift.grad, their_shift.grad, rtol=1e-9, atol=0)
