"""The one module of this project that reads torchdiffeq's private ``_impl`` package.

torchdiffeq keeps its solver table private, yet it is the only authority on which method names exist and
which of them choose their own steps. Reading it rather than copying its list keeps ours from going stale
when torchdiffeq adds or renames a method. Private modules may move in any release, so setup.py bounds
torchdiffeq to SUPPORTED_TORCHDIFFEQ, and an install whose internals moved fails here, saying so.
"""
import torchdiffeq

SUPPORTED_TORCHDIFFEQ = "torchdiffeq>=0.2.5,<0.3"  # keep in step with setup.py

try:
    from torchdiffeq._impl.misc import _all_adjoint_callback_names, _all_callback_names
    from torchdiffeq._impl.odeint import SOLVERS
    from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver
except ImportError as error:
    raise ImportError(
        f"odeint_ext reads torchdiffeq's private solver table, which torchdiffeq "
        f"{getattr(torchdiffeq, '__version__', '(unknown version)')} no longer has where expected ({error}); "
        f"install {SUPPORTED_TORCHDIFFEQ}"
    ) from error

METHODS = tuple(sorted(SOLVERS))
ADAPTIVE_METHODS = tuple(m for m in METHODS if issubclass(SOLVERS[m], RKAdaptiveStepsizeODESolver))
# The step callbacks torchdiffeq calls when a function defines them, and their adjoint-solve twins.
CALLBACK_NAMES = tuple(_all_callback_names)
ADJOINT_CALLBACK_NAMES = tuple(_all_adjoint_callback_names)


def valid_callbacks(method):
    """The callbacks the solver of METHOD calls (torchdiffeq warns about the others)."""
    return frozenset(SOLVERS[method].valid_callbacks())
