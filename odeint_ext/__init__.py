"""An adjoint ``odeint`` over torchdiffeq whose every tensor argument gets its true gradient.

    from odeint_ext import odeint_ext, SolveStats
    stats = SolveStats()
    y = odeint_ext(func, y0, t, args=(memory, mask), options={"max_num_steps": 1000}, stats=stats)
    event_t, y = odeint_event_ext(func, y0, t0, args=(memory, mask), event_fn=lambda t, y: y.sum() - 1)
"""
from .checks import ADAPTIVE_METHODS, FIXED_GRID_METHODS, METHODS
from .errors import NonFiniteState, ODESolveError, StepBudgetExceeded, StepSizeUnderflow
from .solve import odeint_event_ext, odeint_ext
from .stats import SolveStats

__all__ = [
    "odeint_ext",
    "odeint_event_ext",
    "SolveStats",
    "ODESolveError",
    "StepBudgetExceeded",
    "StepSizeUnderflow",
    "NonFiniteState",
    "METHODS",
    "ADAPTIVE_METHODS",
    "FIXED_GRID_METHODS",
]
