"""One Neural-ODE block: h(t0) = input (ANODE-augmented), h(t1) from the solver."""
import torch
from fairseq.models.transformer import Linear
from odeint_ext import SolveStats, odeint_ext
from torch import nn

from .ode_function import SolveContext
from .regularisers import IntegratedRegularisers, sample_probe, steer_end_time


def masked_rms_norm(keep, channels=None):
    """RMS over the real (non-padding) positions and the first ``channels`` channels (all by default):
    the solver's error estimate, and so its steps, depend neither on how much padding the batch carries
    nor on the regularisers' channels."""

    def norm(x):
        if channels is not None:
            x = x[..., :channels]
        if keep is None:
            return x.pow(2).mean().sqrt()
        count = keep.sum() * x.shape[-1]
        return ((x * keep).pow(2).sum() / count).sqrt()

    return norm


class ODEBlock(nn.Module):
    """Solves dh/dt = func(t, h, context, dropout masks) over the settings' times and returns h at the
    last one.

    ``stats`` accumulates the solver's forward and backward NFE until someone resets it. A training solve
    with regularisers (``settings.regularisers``) integrates them with h and leaves them in
    :meth:`pop_integrals`; with ``settings.steer`` it ends at a random time around t1.
    """

    def __init__(self, func, settings, embed_dim, dropout, activation_dropout, name):
        super().__init__()
        self.name = name
        self.func = func
        self.settings = settings
        self.embed_dim = embed_dim
        self.extra_channels = func.width - embed_dim
        self.dropout = dropout
        self.activation_dropout = activation_dropout
        # ANODE: the augmented state is brought back to the embedding width by a learned map.
        self.project_out = Linear(func.width, embed_dim) if self.extra_channels else None
        self.stats = SolveStats()
        self.integrals = None

    def forward(self, x, context: SolveContext):
        """x: T x B x embed_dim; returns h(t1), T x B x embed_dim."""
        h0 = x
        if self.extra_channels:
            h0 = torch.cat([x, x.new_zeros(*x.shape[:-1], self.extra_channels)], dim=-1)
        time_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        ts = torch.tensor(self.settings.ts, dtype=time_dtype, device=x.device)
        if self.training:
            ts = steer_end_time(ts, self.settings.steer)
        if self.settings.detach_encoder and context.memory is not None:
            context = context._replace(memory=context.memory.detach())  # the 2019 bug, as an ablation
        context = self.func.project_memory(context)
        dropout = self.func.sample_dropout_masks(h0, self.dropout, self.activation_dropout)
        # The context and the masks go to odeint_ext as arguments, so that the adjoint gives every
        # tensor in them (the memory's keys and values above all) its gradient.
        func, y0, args = self.func, h0, (context, dropout)
        regularised = self.training and bool(self.settings.regularisers)
        if regularised:
            func = IntegratedRegularisers(self.func, self.settings.regularisers)
            y0 = func.initial_state(h0)
            args = (context, dropout, sample_probe(h0, context.keep) if "jacobian" in func.kinds else None)
        kwargs = self.settings.solver_kwargs()
        kwargs["options"] = dict(kwargs["options"], norm=masked_rms_norm(context.keep, channels=self.func.width))
        y = odeint_ext(func, y0, ts, args, stats=self.stats, name=self.name, **kwargs)[-1]
        h = y
        self.integrals = None
        if regularised:
            h, self.integrals = func.split(y, context.keep)
        return h if self.project_out is None else self.project_out(h)

    def pop_integrals(self):
        """The last training solve's :class:`~.regularisers.Integrals` (None without regularisers), once."""
        integrals, self.integrals = self.integrals, None
        return integrals
