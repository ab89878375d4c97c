"""``odeint_ext`` and ``odeint_event_ext``: torchdiffeq's ``odeint``/``odeint_adjoint`` and ``odeint_event``
for functions with extra arguments."""
from typing import NamedTuple

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint, odeint_event

from . import checks
from ._torchdiffeq import ADJOINT_CALLBACK_NAMES, CALLBACK_NAMES, valid_callbacks
from .errors import NonFiniteState, StepBudgetExceeded, StepSizeUnderflow
from .stats import SolveStats

FORWARD, BACKWARD = "forward", "backward"


class _Dynamics(nn.Module):
    """``func`` with its extra arguments bound, counting evaluations and policing every step.

    torchdiffeq calls ``callback_step`` before each step it attempts (accepted or rejected) and
    ``callback_step_adjoint`` before each step of the adjoint solve; raising there stops the solve
    with our exception instead of torchdiffeq's bare assertion, in ``loss.backward()`` as well.
    The step callbacks ``func`` defines itself run after ours (:meth:`_take_callbacks`).
    """

    def __init__(self, func, args, stats, budgets, police_steps, forward_sign, name, method):
        super().__init__()
        self.name = name
        self.func = func
        self.args = tuple(args)
        self.stats = stats
        self.budgets = budgets
        self.police_steps = police_steps
        # The step callbacks receive the user's time forward; torchdiffeq's adjoint solve integrates the
        # forward solve's internal (increasing) time backwards, and hands its callbacks minus its own internal
        # time: there the internal time is -t0, and the user's time forward_sign x t0, whatever the direction.
        self.forward_sign = forward_sign
        self.signs = {FORWARD: forward_sign, BACKWARD: -1}
        self.direction = FORWARD
        self.nfe = {FORWARD: 0, BACKWARD: 0}
        self.steps = {FORWARD: 0, BACKWARD: 0}
        self._take_callbacks(func, method)

    def _take_callbacks(self, func, method):
        """torchdiffeq calls the step callbacks the function it is given defines, and warns about those its
        solver cannot call. Ours (counting and policing steps) are defined only where the solver calls
        them, so that no warning names a callback the user did not set; each of the user's runs after ours,
        so torchdiffeq calls it, or warns about it, as it would without odeint_ext."""
        ours = {}
        if "callback_step" in valid_callbacks(method):
            ours = {"callback_step": self._forward_step, "callback_step_adjoint": self._backward_step}
        for callback in (*CALLBACK_NAMES, *ADJOINT_CALLBACK_NAMES):
            own, users = ours.get(callback), getattr(func, callback, None)
            if own is not None and users is not None:
                setattr(self, callback, _chained(own, users))
            elif own is not None or users is not None:
                setattr(self, callback, own if users is None else users)

    def forward(self, t, y):
        self.nfe[self.direction] += 1
        if self.stats is not None:
            self.stats.count("nfe", self.direction)
        return self.func(t, y, *self.args)

    def _forward_step(self, t0, y0, dt):
        self._on_step(FORWARD, t0, y0, dt)

    def _backward_step(self, t0, y0, dt):
        self._on_step(BACKWARD, t0, y0, dt)

    def _on_step(self, direction, t0, y0, dt):
        self.steps[direction] += 1
        if self.stats is not None:
            self.stats.count("steps", direction)
        if not self.police_steps:
            return
        budget = self.budgets[direction]
        if budget is not None and self.steps[direction] > budget:
            self._fail(StepBudgetExceeded, f"step budget max_num_steps={budget} exceeded", direction, t0)
        # torchdiffeq integrates in increasing internal time (-t for a decreasing grid) and asserts
        # `t + dt > t` there right after this callback; the same test, so the step never gets that far.
        t_internal = t0 * self.signs[direction]
        if not bool(t_internal + dt > t_internal):
            self._fail(StepSizeUnderflow, f"underflow in dt ({float(dt):.3g})", direction, t0)
        states = y0 if isinstance(y0, tuple) else (y0,)
        if not bool(torch.stack([torch.isfinite(s).all() for s in states]).all()):
            self._fail(NonFiniteState, "non-finite values in the state", direction, t0)

    def _fail(self, error, message, direction, t0):
        user_t = float(t0) if direction == FORWARD else float(t0) * self.forward_sign
        raise error(message, direction=direction, t=user_t, nfe=self.nfe[direction], steps=self.steps[direction],
                    name=self.name)


def _chained(first, then):
    def callback(t0, y0, dt):
        first(t0, y0, dt)
        return then(t0, y0, dt)

    return callback


def _unique_tensors(tensors):
    seen, unique = set(), []
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            unique.append(tensor)
    return tuple(unique)


def _tensors_in(args):
    """The tensors of ``args``, looking into tuples and lists (named tuples included) at any depth."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            yield arg
        elif isinstance(arg, (tuple, list)):
            yield from _tensors_in(arg)


def _replace_tensors(args, replacement):
    """``args`` with each tensor whose id is in ``replacement`` replaced, tuples and lists rebuilt."""
    def replace(arg):
        if isinstance(arg, torch.Tensor):
            return replacement.get(id(arg), arg)
        if isinstance(arg, tuple) and hasattr(arg, "_fields"):
            return type(arg)(*map(replace, arg))
        if isinstance(arg, (tuple, list)):
            return type(arg)(map(replace, arg))
        return arg

    return tuple(map(replace, args))


def _gradient_arguments(args):
    """Each floating tensor argument that requires grad, once (a tensor passed twice, e.g. as key and
    value, must not receive its gradient twice)."""
    return _unique_tensors(a for a in _tensors_in(args) if a.is_floating_point() and a.requires_grad)


class _Inputs(NamedTuple):
    """How :class:`_AdjointOnArgumentLeaves` reads its flat inputs: the state's components, t, func's
    parameters, then the arguments."""

    states: int
    params: int

    def split(self, inputs):
        states, t = inputs[: self.states], inputs[self.states]
        rest = inputs[self.states + 1:]
        return list(states), t, list(rest[: self.params]), list(rest[self.params:])


class _AdjointOnArgumentLeaves(torch.autograd.Function):
    """The adjoint solve run with the tensor arguments as leaves; their gradients go back out once.

    torchdiffeq differentiates f with respect to each of ``adjoint_params`` through the whole graph
    behind it. An argument computed from another argument, or from func's own parameters (keys and
    values projected from an encoder output by func's layers), would then have their shared path
    counted twice: once inside the adjoint, once when its own gradient flows back. Inside this node
    the arguments are detached leaves, independent of each other and of the parameters; autograd
    carries their gradients on through the graph outside, like any other node's.

    ``solve(states, t, params, leaves)`` returns a tuple of tensors (the solution's components, after the
    event time in event mode); so does this node.
    """

    @staticmethod
    def forward(ctx, solve, layout: _Inputs, *inputs):
        ctx.set_materialize_grads(False)  # an output nobody used (the event time, say) gets no cotangent
        states, t, params, arguments = layout.split(inputs)
        with torch.enable_grad():
            state_leaves = [s.detach().requires_grad_(s.requires_grad) for s in states]
            t_leaf = t.detach().requires_grad_(t.requires_grad)
            leaves = [a.detach().requires_grad_() for a in arguments]
            outputs = solve(state_leaves, t_leaf, params, leaves)
        ctx.graph = outputs, [*state_leaves, t_leaf, *params, *leaves]
        return tuple(output.detach() for output in outputs)

    @staticmethod
    def backward(ctx, *grad_outputs):
        outputs, inputs = ctx.graph
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None and o.requires_grad]
        wanted = [x for x in inputs if x.requires_grad]
        grads = [None] * len(wanted)
        if pairs and wanted:
            # The inner graph is small (torchdiffeq keeps its solution and inputs); keeping it lets a caller
            # backward twice (retain_graph, gradcheck). It goes when the outer graph does.
            grads = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True,
                                        retain_graph=True)
        grads = iter(grads)
        return (None, None, *(next(grads) if x.requires_grad else None for x in inputs))


def _components(y):
    """A state (tensor or tuple of tensors) as a tuple of tensors."""
    return tuple(y) if isinstance(y, tuple) else (y,)


def _as_state(components, like):
    """Components back in the form of ``like`` (a tensor or a tuple)."""
    return tuple(components) if isinstance(like, tuple) else components[0]


def _split_budget(options):
    options = dict(options or {})
    return options, options.pop("max_num_steps", None)


class _Integration(NamedTuple):
    """One solve's settings, checked: what torchdiffeq gets besides the function, y0 and t."""

    rtol: object
    atol: object
    method: str
    options: dict
    adjoint: bool
    adjoint_options: dict


def _prepare(func, y0, t, args, *, rtol, atol, method, options, adjoint, adjoint_options, stats, name):
    """Every input check, then the bound function and the settings of its solve."""
    checks.check_func(func, adjoint)
    checks.check_state(y0)
    checks.check_times(t)
    checks.check_args(args)
    checks.check_tolerance(rtol, "rtol")
    checks.check_tolerance(atol, "atol")
    checks.check_method(method)
    checks.check_solver_options(options, method)
    options, forward_budget = _split_budget(options)
    adjoint_options, backward_budget = _split_budget(
        {**{k: v for k, v in options.items() if k != "norm"}, **(adjoint_options or {})}
    )
    checks.check_solver_options(adjoint_options, method, name="adjoint_options")
    if backward_budget is None:
        backward_budget = forward_budget
    dynamics = _Dynamics(
        func,
        args,
        stats,
        budgets={FORWARD: forward_budget, BACKWARD: backward_budget},
        police_steps=checks.is_adaptive(method),
        forward_sign=1 if len(t) < 2 or bool(t[-1] > t[0]) else -1,
        name=name,
        method=method,
    )
    return dynamics, _Integration(rtol, atol, method, options, adjoint, adjoint_options)


def _integrate(dynamics, y0, t, settings: _Integration, event_fn=None):
    """torchdiffeq's odeint or odeint_adjoint on the bound function; in event mode (``event_fn``) returns
    (event time, solution) as torchdiffeq does."""
    if dynamics.stats is not None:
        dynamics.stats.solves += 1
    kwargs = dict(rtol=settings.rtol, atol=settings.atol, method=settings.method, options=settings.options)
    if event_fn is not None:
        kwargs["event_fn"] = event_fn
    try:
        if not settings.adjoint:
            return odeint(dynamics, y0, t, **kwargs)
        return _integrate_adjoint(dynamics, y0, t, settings, kwargs, event_mode=event_fn is not None)
    finally:
        dynamics.direction = BACKWARD


def _integrate_adjoint(dynamics, y0, t, settings, kwargs, event_mode):
    params = tuple(p for p in dynamics.func.parameters() if p.requires_grad)
    args = dynamics.args
    arguments = _gradient_arguments(args)

    def solve(y0, t, params, arguments):
        return odeint_adjoint(dynamics, y0, t, adjoint_options=settings.adjoint_options,
                              adjoint_params=(*params, *arguments), **kwargs)

    if not (arguments and torch.is_grad_enabled()):
        return solve(y0, t, params, arguments)

    def solve_on_leaves(states, t, params, leaves):
        dynamics.args = _replace_tensors(args, {id(a): leaf for a, leaf in zip(arguments, leaves)})
        result = solve(_as_state(states, y0), t, params, leaves)
        if event_mode:
            event_t, solution = result
            return (event_t, *_components(solution))
        return _components(result)

    states = _components(y0)
    outputs = _AdjointOnArgumentLeaves.apply(solve_on_leaves, _Inputs(len(states), len(params)), *states, t, *params,
                                             *arguments)
    if event_mode:
        return outputs[0], _as_state(outputs[1:], y0)
    return _as_state(outputs, y0)


def odeint_ext(
    func,
    y0,
    t,
    args=(),
    *,
    rtol=1e-3,
    atol=1e-3,
    method="dopri5",
    options=None,
    adjoint=True,
    adjoint_options=None,
    stats=None,
    name=None,
    event_fn=None,
):
    """Solve dy/dt = func(t, y, *args) at the times ``t``; returns a tensor of shape (len(t), *y0.shape),
    or, for a tuple state, a tuple of such tensors.

    Args:
        func: callable ``func(t, y, *args)``; an ``nn.Module`` when ``adjoint=True``. The step callbacks
            torchdiffeq knows (``callback_step``, ``callback_accept_step``, ``callback_reject_step`` and
            their ``_adjoint`` twins), where ``func`` defines them, are called as torchdiffeq calls them.
        y0: floating initial state: a tensor, or a tuple of tensors (each solved with its own norm, as
            torchdiffeq does).
        t: 1-D strictly monotone times; ``y[0] == y0``. A single time returns ``y0`` (stacked) without a
            solve: no function evaluation.
        args: extra arguments for ``func``: tensors of any dtype, ``None``, plain values, or tuples of
            them (named tuples too, at any depth). With the adjoint, every floating tensor in ``args``
            that requires grad (leaf or not, e.g. an encoder output) receives the gradient plain
            backpropagation through the solver would give it.
        rtol, atol, method: as in torchdiffeq.
        options: torchdiffeq solver options. ``max_num_steps`` is the step budget (accepted and
            rejected steps) of the whole solve, enforced by ``odeint_ext``: exceeding it raises
            :class:`StepBudgetExceeded`.
        adjoint: solve the adjoint ODE for gradients (constant memory) instead of backpropagating
            through the solver's operations.
        adjoint_options: options of the adjoint solve, on top of ``options`` (less its ``norm``); so
            ``{"norm": "seminorm"}`` keeps the forward step budget and step size.
        stats: a :class:`SolveStats` to add this solve's NFE and steps to, forward now and backward
            when ``loss.backward()`` runs the adjoint.
        name: a label for error messages (e.g. "decoder"), also kept as the errors' ``name``.
        event_fn: torchdiffeq's event mode: ``t`` holds the start and a second time (only its direction
            counts) and the solve runs until ``event_fn(t, y)`` crosses zero; returns ``(event_t,
            solution at [t0, event_t])``. As in torchdiffeq, no gradient passes through the event time
            here: :func:`odeint_event_ext` gives it one.

    Raises:
        StepBudgetExceeded, StepSizeUnderflow, NonFiniteState: from the forward solve, or from
            ``backward()`` for the adjoint solve.
    """
    dynamics, settings = _prepare(func, y0, t, args, rtol=rtol, atol=atol, method=method, options=options,
                                  adjoint=adjoint, adjoint_options=adjoint_options, stats=stats, name=name)
    if event_fn is not None:
        checks.check_event(event_fn, t[0])
        if len(t) != 2:
            raise ValueError(f"with event_fn, t must hold two times (the start and a time giving the direction), "
                             f"got {len(t)}")
        return _integrate(dynamics, y0, t, settings, event_fn=event_fn)
    if len(t) == 1:
        return _as_state([c.unsqueeze(0).clone() for c in _components(y0)], y0)
    return _integrate(dynamics, y0, t, settings)


def odeint_event_ext(
    func,
    y0,
    t0,
    args=(),
    *,
    event_fn,
    reverse_time=False,
    rtol=1e-3,
    atol=1e-3,
    method="dopri5",
    options=None,
    adjoint=True,
    adjoint_options=None,
    stats=None,
    name=None,
):
    """Solve dy/dt = func(t, y, *args) from ``t0`` until ``event_fn(t, y)`` crosses zero: torchdiffeq's
    ``odeint_event``, with every guarantee of :func:`odeint_ext` (argument gradients, NFE, the step budget).

    Returns ``(event_t, solution)``: the event time, differentiable (through the implicit function theorem,
    as torchdiffeq does) with respect to y0, t0, func's parameters and the tensor arguments; and the states
    at ``[t0, event_t]`` (shape (2, *y0.shape), or a tuple of such for a tuple state). ``reverse_time``
    solves towards decreasing time. The other arguments are :func:`odeint_ext`'s.
    """
    checks.check_event(event_fn, t0)
    t = torch.cat([t0.reshape(-1), t0.reshape(-1).detach() + (-1.0 if reverse_time else 1.0)])
    dynamics, settings = _prepare(func, y0, t, args, rtol=rtol, atol=atol, method=method, options=options,
                                  adjoint=adjoint, adjoint_options=adjoint_options, stats=stats, name=name)

    def interface(bound, y0, t, *, event_fn):
        return _integrate(bound, y0, t, settings, event_fn=event_fn)

    return odeint_event(dynamics, y0, t0, event_fn=event_fn, reverse_time=reverse_time, odeint_interface=interface)
