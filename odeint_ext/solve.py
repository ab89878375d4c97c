"""``odeint_ext``: torchdiffeq's ``odeint``/``odeint_adjoint`` for functions with extra arguments."""
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from . import checks
from .errors import NonFiniteState, StepBudgetExceeded, StepSizeUnderflow
from .stats import SolveStats

FORWARD, BACKWARD = "forward", "backward"


class _Dynamics(nn.Module):
    """``func`` with its extra arguments bound, counting evaluations and policing every step.

    torchdiffeq calls ``callback_step`` before each step it attempts (accepted or rejected) and
    ``callback_step_adjoint`` before each step of the adjoint solve; raising there stops the solve
    with our exception instead of torchdiffeq's bare assertion, in ``loss.backward()`` as well.
    """

    def __init__(self, func, args, stats, budgets, police_steps, forward_sign, name):
        super().__init__()
        self.name = name
        self.func = func
        self.args = tuple(args)
        self.stats = stats
        self.budgets = budgets
        self.police_steps = police_steps
        self.signs = {FORWARD: forward_sign, BACKWARD: -forward_sign}
        self.direction = FORWARD
        self.nfe = {FORWARD: 0, BACKWARD: 0}
        self.steps = {FORWARD: 0, BACKWARD: 0}

    def forward(self, t, y):
        self.nfe[self.direction] += 1
        if self.stats is not None:
            self.stats.count("nfe", self.direction)
        return self.func(t, y, *self.args)

    def callback_step(self, t0, y0, dt):
        self._on_step(FORWARD, t0, y0, dt)

    def callback_step_adjoint(self, t0, y0, dt):
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
        raise error(message, direction=direction, t=float(t0), nfe=self.nfe[direction], steps=self.steps[direction],
                    name=self.name)


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


class _AdjointOnArgumentLeaves(torch.autograd.Function):
    """The adjoint solve run with the tensor arguments as leaves; their gradients go back out once.

    torchdiffeq differentiates f with respect to each of ``adjoint_params`` through the whole graph
    behind it. An argument computed from another argument, or from func's own parameters (keys and
    values projected from an encoder output by func's layers), would then have their shared path
    counted twice: once inside the adjoint, once when its own gradient flows back. Inside this node
    the arguments are detached leaves, independent of each other and of the parameters; autograd
    carries their gradients on through the graph outside, like any other node's.
    """

    @staticmethod
    def forward(ctx, solve, num_params, y0, t, *inputs):
        params, arguments = inputs[:num_params], inputs[num_params:]
        with torch.enable_grad():
            y0_leaf = y0.detach().requires_grad_(y0.requires_grad)
            t_leaf = t.detach().requires_grad_(t.requires_grad)
            leaves = [a.detach().requires_grad_() for a in arguments]
            solution = solve(y0_leaf, t_leaf, params, leaves)
        ctx.graph = solution, [y0_leaf, t_leaf, *params, *leaves]
        return solution.detach()

    @staticmethod
    def backward(ctx, grad_solution):
        solution, inputs = ctx.graph
        wanted = [x for x in inputs if x.requires_grad]
        # The inner graph is small (torchdiffeq keeps its solution and inputs); keeping it lets a caller
        # backward twice (retain_graph, gradcheck). It goes when the outer graph does.
        grads = iter(torch.autograd.grad(solution, wanted, grad_solution, allow_unused=True, retain_graph=True))
        return (None, None, *(next(grads) if x.requires_grad else None for x in inputs))


def _split_budget(options):
    options = dict(options or {})
    return options, options.pop("max_num_steps", None)


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
):
    """Solve dy/dt = func(t, y, *args) at the times ``t``; returns a tensor of shape (len(t), *y0.shape).

    Args:
        func: callable ``func(t, y, *args)``; an ``nn.Module`` when ``adjoint=True``.
        y0: floating initial state.
        t: 1-D strictly monotone times; ``y[0] == y0``.
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

    Raises:
        StepBudgetExceeded, StepSizeUnderflow, NonFiniteState: from the forward solve, or from
            ``backward()`` for the adjoint solve.
    """
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

    forward_sign = 1 if bool(t[-1] > t[0]) else -1
    dynamics = _Dynamics(
        func,
        args,
        stats,
        budgets={FORWARD: forward_budget, BACKWARD: backward_budget},
        police_steps=checks.is_adaptive(method),
        forward_sign=forward_sign,
        name=name,
    )
    if stats is not None:
        stats.solves += 1
    if not adjoint:
        return odeint(dynamics, y0, t, rtol=rtol, atol=atol, method=method, options=options)
    params = tuple(p for p in func.parameters() if p.requires_grad)
    arguments = _gradient_arguments(args)

    def solve(y0, t, params, arguments):
        return odeint_adjoint(dynamics, y0, t, rtol=rtol, atol=atol, method=method, options=options,
                              adjoint_options=adjoint_options, adjoint_params=(*params, *arguments))

    if arguments and torch.is_grad_enabled():
        def solve_on_leaves(y0, t, params, leaves):
            dynamics.args = _replace_tensors(args, {id(a): leaf for a, leaf in zip(arguments, leaves)})
            return solve(y0, t, params, leaves)

        solution = _AdjointOnArgumentLeaves.apply(solve_on_leaves, len(params), y0, t, *params, *arguments)
    else:
        solution = solve(y0, t, params, arguments)
    dynamics.direction = BACKWARD
    return solution
