"""Benchmarks of the solver layer on the standalone block problem: odeint_ext against torchdiffeq, the solver's
share of a block's time, and the seminorm adjoint's savings."""
import statistics
import time

import torch
from torch import nn
from torchdiffeq import odeint_adjoint

from block_problem import decoder_block_problem
from odeint_ext import SolveStats, odeint_ext
from node_experiments.report import Table, timed

SEMINORM_HEADER = ["solve, tolerance", "bwd NFE", "bwd NFE seminorm", "NFE ratio", "s/update", "s/update seminorm",
                   "time ratio"]


def solve_and_backward(problem, **options):
    """Solve the block problem with odeint_ext (``options`` are its keyword arguments), backward of y(t1).sum()."""
    y = odeint_ext(problem.func, problem.h0, problem.t, problem.args, **options)
    y[-1].sum().backward()


def overhead(size, repeats):
    """1. odeint_ext vs torchdiffeq's odeint_adjoint with the right adjoint_params, same function."""
    problem = decoder_block_problem(size)
    func, h0, t, args = problem.func, problem.h0, problem.t, problem.args

    class Bound(nn.Module):
        """torchdiffeq's f(t, y): the block function with its arguments bound, counting its calls."""

        def __init__(self):
            super().__init__()
            self.func, self.calls = func, 0

        def forward(self, t, y):
            self.calls += 1
            return self.func(t, y, *args)

    bound = Bound()

    def plain():
        bound.calls = 0
        y = odeint_adjoint(bound, h0, t, rtol=1e-3, atol=1e-3, method="dopri5",
                           adjoint_params=tuple(func.parameters()) + (problem.context.memory,))
        y[-1].sum().backward()
        return bound.calls

    def extended():
        stats = SolveStats()
        solve_and_backward(problem, rtol=1e-3, atol=1e-3, method="dopri5", stats=stats)
        return stats.nfe_forward + stats.nfe_backward

    # Interleave the two so that machine noise hits both alike.
    plain_times, ext_times = [], []
    for _ in range(repeats):
        plain_times.append(timed(plain, 1)[0])
        ext_times.append(timed(extended, 1)[0])
    nfe_plain, nfe_ext = plain(), extended()
    tp, te = statistics.median(plain_times), statistics.median(ext_times)
    return Table("overhead", "1. Solver layer overhead: odeint_ext vs torchdiffeq odeint_adjoint (forward + backward)",
                 ["state (T x B x C)", "torchdiffeq ms", "odeint_ext ms", "ratio", "NFE torchdiffeq", "NFE odeint_ext"],
                 [[f"{size.length}x{size.batch}x{size.width}", f"{tp * 1e3:.1f}", f"{te * 1e3:.1f}", f"{te / tp:.3f}",
                   nfe_plain, nfe_ext]], note="Target: ratio <= 1.03 and equal NFE.")


def solver_share(size, repeats):
    """2. Share of a NODE block's forward+backward time spent outside function evaluations.

    The function's work is its evaluations times its standalone cost: one call of f (forward solve),
    one call of f plus its vector-Jacobian product (each adjoint evaluation, or each step replayed by
    backprop). The rest is the solver: step control, error norms, interpolation, bookkeeping."""
    problem = decoder_block_problem(size)
    func, t, args = problem.func, problem.t, problem.args
    state = problem.h0.detach()

    def f_only():
        with torch.no_grad():
            func(t[0], state, *args)

    def f_and_vjp():
        y = state.clone().requires_grad_(True)
        out = func(t[0], y, *args)
        torch.autograd.grad(out, (y, *func.parameters()), torch.ones_like(out))

    cost_f = timed(f_only, 20 * repeats)[0]
    cost_fv = timed(f_and_vjp, 20 * repeats)[0]
    rows = []
    for adjoint in (True, False):
        stats = SolveStats()

        def run():
            stats.reset()
            start = time.perf_counter()
            solve_and_backward(problem, rtol=1e-3, atol=1e-3, adjoint=adjoint, stats=stats)
            return time.perf_counter() - start

        total = timed(run, repeats)[0]
        if adjoint:
            work = stats.nfe_forward * cost_f + stats.nfe_backward * cost_fv
        else:
            work = stats.nfe_forward * cost_fv  # f in the forward solve, its vjp in backprop's replay
        rows.append(["adjoint" if adjoint else "backprop", stats.nfe_forward, stats.nfe_backward,
                     f"{total * 1e3:.1f}", f"{work * 1e3:.1f}", f"{100 * max(total - work, 0) / total:.1f}%"])
    return Table("solver_share", "2. Solver overhead inside a NODE block (decoder function, dopri5, tol 1e-3)",
                 ["gradient", "NFE fwd", "NFE bwd", "block fwd+bwd ms", "function work ms", "outside f"], rows,
                 note=f"f alone {cost_f * 1e3:.2f} ms, f + vjp {cost_fv * 1e3:.2f} ms. Target: <= 10% outside f.")


def seminorm_row(solve, nfe, seconds, nfe_format="{}"):
    """A row of the seminorm table; ``nfe`` and ``seconds`` map seminorm (False, True) to backward NFE and time."""
    return [solve, nfe_format.format(nfe[False]), nfe_format.format(nfe[True]), f"{nfe[True] / nfe[False]:.2f}",
            f"{seconds[False]:.3f}", f"{seconds[True]:.3f}", f"{seconds[True] / seconds[False]:.2f}"]


def block_seminorm_rows(size, repeats):
    """Seminorm on the standalone decoder block function (random weights, full parameter adjoint)."""
    problem = decoder_block_problem(size)
    rows = []
    for tol in (1e-2, 1e-3):
        nfe, seconds = {}, {}
        for seminorm in (False, True):
            stats = SolveStats()

            def run():
                stats.reset()
                solve_and_backward(problem, rtol=tol, atol=tol,
                                   adjoint_options={"norm": "seminorm"} if seminorm else None, stats=stats)
                return stats.nfe_backward

            seconds[seminorm], nfe[seminorm] = timed(run, repeats)
        rows.append(seminorm_row(f"block function, {tol:g}", nfe, seconds))
    return rows
