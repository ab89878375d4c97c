"""RNODE's regularisers (Finlay et al. 2020) integrated inside the solve, as extra state channels.

The state h (T x B x width) gets one channel per regulariser, starting at 0; its derivative is the
regulariser's integrand at each position, so at t1 the channel holds the integral over [t0, t1],
computed by the same solver steps as h. The channels do not feed back into f, and the step-size
control looks at h alone (``ode_block.masked_rms_norm``), so a regulariser changes the steps only through
what it teaches f, and NFE stays comparable with an unregularised run.

- kinetic: ||f(t, h)||^2 at each position (sum over the state's channels).
- jacobian: ||e^T df/dh||^2 at each position, e a Gaussian probe drawn once per solve (Hutchinson):
  summed over positions, its expectation is the squared Frobenius norm of df/dh. Attention couples
  positions, so a position's share is that of its own column of the Jacobian.

Padding positions get zero integrands (the probe is zero there, f is zero there), so the integrals
cover real positions only.
"""
import contextlib
from typing import NamedTuple, Tuple

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

KINDS = ("kinetic", "jacobian")


class Integrals(NamedTuple):
    """A training solve's regularisers: the integral of each kind summed over the real positions (with
    their graph, for the loss), and the number of real positions."""

    totals: dict
    positions: torch.Tensor


class IntegratedRegularisers(nn.Module):
    """d/dt [h, integrals] = [f(t, h), integrands]: ``func`` with one channel appended per kind in
    ``kinds`` (in :data:`KINDS` order). Its parameters are ``func``'s."""

    def __init__(self, func, kinds: Tuple[str, ...]):
        super().__init__()
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown regulariser(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.func = func
        self.kinds = tuple(kind for kind in KINDS if kind in kinds)

    @property
    def width(self):
        return self.func.width

    def initial_state(self, h0):
        return torch.cat([h0, h0.new_zeros(*h0.shape[:-1], len(self.kinds))], dim=-1)

    def forward(self, t, y, context, dropout, probe=None):
        h = y[..., : self.width]
        if "jacobian" in self.kinds:
            dh, vjp = self._with_jacobian_probe(t, h, context, dropout, probe)
        else:
            dh = self.func(t, h, context, dropout)
        integrands = {"kinetic": lambda: dh.pow(2).sum(-1, keepdim=True),
                      "jacobian": lambda: vjp.pow(2).sum(-1, keepdim=True)}
        rates = torch.cat([integrands[kind]() for kind in self.kinds], dim=-1)
        if context.keep is not None:
            rates = rates * context.keep
        return torch.cat([dh, rates], dim=-1)

    def _with_jacobian_probe(self, t, h, context, dropout, probe):
        """f(t, h) and probe^T df/dh. The vector-Jacobian product needs a graph from h to f even where
        the solver runs without one (the adjoint's forward solve); it keeps its own graph only when the
        caller differentiates through it (backprop, the adjoint's backward solve)."""
        differentiating = torch.is_grad_enabled()
        # Differentiating the product again goes through attention's backward, which only the math
        # kernel of scaled_dot_product_attention can differentiate.
        kernels = sdpa_kernel(SDPBackend.MATH) if differentiating else contextlib.nullcontext()
        with torch.enable_grad(), kernels:
            if not (differentiating and h.requires_grad):
                # (a view taken under no_grad may claim requires_grad without a graph behind it)
                h = h.detach().requires_grad_()
            dh = self.func(t, h, context, dropout)
            (vjp,) = torch.autograd.grad(dh, h, probe, create_graph=differentiating)
        return (dh, vjp) if differentiating else (dh.detach(), vjp)

    def split(self, y, keep):
        """The final state [h, integrals] -> (h, :class:`Integrals`)."""
        h, channels = y[..., : self.width], y[..., self.width:]
        positions = channels.new_tensor(channels.shape[0] * channels.shape[1]) if keep is None else keep.sum()
        if keep is not None:
            channels = channels * keep
        # Summed in float32 at least: thousands of positions overflow half precision.
        totals = {kind: channels[..., i].sum(dtype=torch.promote_types(channels.dtype, torch.float32))
                  for i, kind in enumerate(self.kinds)}
        return h, Integrals(totals=totals, positions=positions.detach())


def sample_probe(h0, keep):
    """The Jacobian regulariser's Gaussian probe for one solve, zero at padding positions."""
    probe = torch.randn_like(h0)
    return probe if keep is None else probe * keep


def steer_end_time(ts, steer):
    """STEER (Ghosh et al. 2020): the times with the last one drawn uniformly from [t1 - b, t1 + b]."""
    if not steer:
        return ts
    end = ts[-1] + (2 * torch.rand((), dtype=ts.dtype, device=ts.device) - 1) * steer
    return torch.cat([ts[:-1], end.reshape(1)])
