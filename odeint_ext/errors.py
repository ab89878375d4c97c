"""Exceptions raised when an ODE solve cannot finish.

torchdiffeq signals these conditions with bare ``AssertionError``s; ``odeint_ext`` raises these
classes instead, in the forward solve and in the adjoint (backward) solve alike, so that a caller
can tell a solver failure from a bug and decide what to do with the batch.
"""


class ODESolveError(RuntimeError):
    """A solve stopped before reaching its final time.

    Attributes:
        direction: ``"forward"`` or ``"backward"`` (the adjoint solve).
        name: the caller's label for the solve (``odeint_ext(..., name=...)``), or None.
        t: the time the solve had reached (start of the step that failed).
        nfe: function evaluations spent by this solve until it stopped.
        steps: solver steps (accepted and rejected) attempted by this solve.
    """

    def __init__(self, message, *, direction, t, nfe, steps, name=None):
        solve = f"{name} {direction}" if name else direction
        super().__init__(
            f"{message} ({solve} solve reached t={t:.6g} after {steps} steps, {nfe} function evaluations)"
        )
        self.direction = direction
        self.name = name
        self.t = t
        self.nfe = nfe
        self.steps = steps


class StepBudgetExceeded(ODESolveError):
    """The solve needed more steps than ``max_num_steps`` allowed."""


class StepSizeUnderflow(ODESolveError):
    """The adaptive step size fell so low that ``t + dt == t``: the solver cannot advance."""


class NonFiniteState(ODESolveError):
    """The state became NaN or infinite during the solve."""
