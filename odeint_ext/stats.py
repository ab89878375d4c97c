"""Counters of solver work, filled in by ``odeint_ext`` as it solves."""
from dataclasses import dataclass, fields


@dataclass
class SolveStats:
    """Work done by the solves that were given this object, summed until :meth:`reset`.

    ``nfe_forward``/``steps_forward`` grow while a forward solve runs; ``nfe_backward``/``steps_backward``
    grow while the adjoint solve runs inside ``loss.backward()`` (they stay 0 with ``adjoint=False``,
    where backpropagation replays the recorded graph without calling the function; a differentiated event
    time, ``odeint_event_ext``, adds the one evaluation of f at the event its gradient needs). ``solves``
    counts forward solves, so ``nfe_forward / solves`` is the mean NFE per solve.
    """

    nfe_forward: int = 0
    nfe_backward: int = 0
    steps_forward: int = 0
    steps_backward: int = 0
    solves: int = 0

    def count(self, kind, direction):
        """One more function evaluation (kind "nfe") or step (kind "steps") of a "forward"/"backward" solve."""
        name = f"{kind}_{direction}"
        setattr(self, name, getattr(self, name) + 1)

    def reset(self):
        for f in fields(self):
            setattr(self, f.name, 0)

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}
