"""f(t, h): a Transformer layer's sub-layers as an ODE function, in one of two forms (``--node-function``).

- chain (the 2019 f): the sub-layers chained WITHOUT residual additions; the ODE is the only residual.
- layer: the whole update of one pre-norm layer, each sub-layer added to the running state as in
  fairseq's TransformerEncoderLayer/TransformerDecoderLayer with ``normalize_before``; f is the layer's
  output minus its input, so one Euler step of size 1 is that layer.
"""
from typing import NamedTuple, Optional

import torch
from fairseq import utils
from fairseq.models.transformer import Linear
from fairseq.modules import LayerNorm, MultiheadAttention
from torch import nn
from torch.nn import functional as F

from ..options import FUNCTIONS
from .incremental import EvaluationCaches


class SolveContext(NamedTuple):
    """What f sees besides t and h: fixed for one solve. Built by keyword; each side fills what it has."""

    keep: Optional[torch.Tensor] = None  # T x B x 1: 1 at real positions, 0 at padding
    self_attn_mask: Optional[torch.Tensor] = None  # T x T, e.g. the decoder's causal mask
    self_attn_padding_mask: Optional[torch.Tensor] = None  # B x T, True at padding
    memory: Optional[torch.Tensor] = None  # the encoder output, S x B x C
    memory_padding_mask: Optional[torch.Tensor] = None  # B x S, True at padding
    # The memory projected to the cross-attention's keys and values (B x heads x S x head_dim): they
    # depend on neither t nor h, so ODEFunction.project_memory computes them once per solve.
    memory_keys: Optional[torch.Tensor] = None
    memory_values: Optional[torch.Tensor] = None
    # Incremental decoding on a fixed grid: the self-attention cache of each evaluation (incremental.py).
    self_attn_caches: Optional[EvaluationCaches] = None


class DropoutMasks(NamedTuple):
    """Inverted-dropout multipliers of one solve, None where dropout is off."""

    self_attn: Optional[torch.Tensor] = None
    cross_attn: Optional[torch.Tensor] = None
    ffn_hidden: Optional[torch.Tensor] = None
    ffn_out: Optional[torch.Tensor] = None


def _drop(x, mask):
    return x if mask is None else x * mask


def _with_time(x, time):
    return x if time is None else torch.cat([x, time], dim=-1)


class ODEFunction(nn.Module):
    """dh/dt from the sub-layers this block has (self-attention, cross-attention, feed-forward), each
    behind its own layer norm: with ``function="chain"`` FFN(LN(CrossAttn(LN(SelfAttn(LN(h)))))); with
    ``function="layer"`` u = SelfAttn(LN(h)), u = u + CrossAttn(LN(h + u)), f = u + FFN(LN(h + u)): the
    layer's output minus its input.

    The state h (T x B x width) is the embedding, ANODE-augmented by zero channels. With
    ``time_dependent`` the sub-layers see ``heads`` more channels holding t (one per head, so the
    attention width stays divisible by the heads); the feed-forward output is ``width`` wide again. The
    layer function adds each sub-layer's first ``width`` output channels to its update and gives the
    next sub-layer h + update with t's channels again: t is an input of every sub-layer, not state.

    f is deterministic within a solve: dropout uses masks drawn once per solve
    (:meth:`sample_dropout_masks`) and passed in as an argument, the same in the forward and the adjoint
    solve; attention-probability dropout is not used inside f.
    """

    def __init__(self, width, heads, ffn_dim, *, self_attention, cross_attention, encoder_dim=None,
                 time_dependent=False, activation_fn="relu", function="chain"):
        super().__init__()
        if function not in FUNCTIONS:
            raise ValueError(f"function must be one of {', '.join(FUNCTIONS)} (--node-function), got {function!r}")
        self.function = function
        self.width = width
        self.heads = heads
        self.time_dependent = time_dependent
        self.inner_width = width + (heads if time_dependent else 0)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        if self_attention:
            self.self_attn_layer_norm = LayerNorm(self.inner_width)
            self.self_attn = MultiheadAttention(self.inner_width, heads, self_attention=True)
        else:
            self.self_attn = None
        if cross_attention:
            self.encoder_attn_layer_norm = LayerNorm(self.inner_width)
            self.encoder_attn = MultiheadAttention(
                self.inner_width, heads, kdim=encoder_dim, vdim=encoder_dim, encoder_decoder_attention=True
            )
        else:
            self.encoder_attn = None
        self.final_layer_norm = LayerNorm(self.inner_width)
        self.fc1 = Linear(self.inner_width, ffn_dim)
        self.fc2 = Linear(ffn_dim, width)

    def sample_dropout_masks(self, h, dropout, activation_dropout) -> DropoutMasks:
        """Inverted-dropout masks for one solve."""

        def mask(channels, p):
            if not self.training or p <= 0:
                return None
            shape = (*h.shape[:-1], channels)
            return torch.empty(shape, dtype=h.dtype, device=h.device).bernoulli_(1 - p) / (1 - p)

        return DropoutMasks(
            self_attn=mask(self.inner_width, dropout) if self.self_attn is not None else None,
            cross_attn=mask(self.inner_width, dropout) if self.encoder_attn is not None else None,
            ffn_hidden=mask(self.fc1.out_features, activation_dropout),
            ffn_out=mask(self.width, dropout),
        )

    def project_memory(self, context: SolveContext) -> SolveContext:
        """The context with the memory replaced by the cross-attention's keys and values of it (through
        that attention's own projections), for a whole solve."""
        if self.encoder_attn is None or context.memory is None:
            return context
        attention, memory = self.encoder_attn, context.memory
        length, batch, _ = memory.shape

        def by_head(x):
            return x.view(length, batch, attention.num_heads, attention.head_dim).permute(1, 2, 0, 3).contiguous()

        return context._replace(memory=None, memory_keys=by_head(attention.k_proj(memory)),
                                memory_values=by_head(attention.v_proj(memory)))

    def _cross_attention(self, x, context):
        """fairseq's encoder-decoder attention on keys and values projected before the solve: its own
        query and output projections around torch's scaled dot-product attention (fairseq's scaling,
        head_dim ** -0.5, is that function's default)."""
        attention = self.encoder_attn
        length, batch, _ = x.shape
        query = attention.q_proj(x).view(length, batch, attention.num_heads, attention.head_dim).permute(1, 2, 0, 3)
        mask = context.memory_padding_mask
        attend = None if mask is None else ~mask[:, None, None, :]
        out = F.scaled_dot_product_attention(query, context.memory_keys, context.memory_values, attn_mask=attend)
        return attention.out_proj(out.permute(2, 0, 1, 3).reshape(length, batch, -1))

    def _next_input(self, h, sublayer_out, update, time):
        """The next sub-layer's input and the update so far: chain feeds a sub-layer's output on as it is;
        layer adds it to the update (its first ``width`` channels: t's are inputs, not state) and feeds on
        h + update, with t's channels again."""
        if self.function == "chain":
            return sublayer_out, update
        update = sublayer_out[..., : self.width] if update is None else update + sublayer_out[..., : self.width]
        return _with_time(h + update, time), update

    def forward(self, t, h, context: SolveContext = SolveContext(), dropout: DropoutMasks = DropoutMasks()):
        time = t.to(h).expand(*h.shape[:-1], self.heads) if self.time_dependent else None  # T x B x heads
        x, update = _with_time(h, time), None  # x: T x B x inner_width, the next sub-layer's input
        if self.self_attn is not None:
            q = self.self_attn_layer_norm(x)
            caches = context.self_attn_caches
            attended, _ = self.self_attn(q, q, q, key_padding_mask=context.self_attn_padding_mask,
                                         attn_mask=context.self_attn_mask, need_weights=False,
                                         incremental_state=None if caches is None else caches.next_state())
            x, update = self._next_input(h, _drop(attended, dropout.self_attn), update, time)
        if self.encoder_attn is not None:
            if context.memory_keys is None:
                context = self.project_memory(context)
            attended = self._cross_attention(self.encoder_attn_layer_norm(x), context)
            x, update = self._next_input(h, _drop(attended, dropout.cross_attn), update, time)
        hidden = _drop(self.activation_fn(self.fc1(self.final_layer_norm(x))), dropout.ffn_hidden)
        dh = _drop(self.fc2(hidden), dropout.ffn_out)  # T x B x width
        if update is not None:
            dh = update + dh  # layer: the layer's output minus its input, summed without forming h + ... - h
        # Padding positions do not move, so they never change the real positions' result.
        return dh if context.keep is None else dh * context.keep
