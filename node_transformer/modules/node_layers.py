"""ODE blocks in the call conventions of fairseq's encoder and decoder layers, so that fairseq's own
TransformerEncoder/TransformerDecoder run them in place of their layer stacks.

Each adapter holds its ODE block as ``ode`` and only translates fairseq's arguments into the block's
:class:`SolveContext`; the block (``layer.ode``) owns the settings and the NFE counters.
"""
from fairseq.incremental_decoding_utils import with_incremental_state
from fairseq.modules import FairseqDropout, LayerNorm, MultiheadAttention
from torch import nn

from .incremental import EvaluationCaches, reorder_evaluation_caches
from .ode_block import ODEBlock
from .ode_function import ODEFunction, SolveContext

# Where the block's parameters sat before the adapters held the block as ``ode``.
_BLOCK_KEYS_BEFORE_0_2 = ("func.", "project_out.")


def _keep(padding_mask, x):
    """B x T padding mask (True = pad) -> T x B x 1 multiplier (1 real, 0 pad), or None."""
    return None if padding_mask is None else (~padding_mask).transpose(0, 1).unsqueeze(-1).to(x)


def _ode_block(args, settings, side, *, self_attention, cross_attention):
    embed_dim = getattr(args, f"{side}_embed_dim")
    heads = getattr(args, f"{side}_attention_heads")
    func = ODEFunction(
        embed_dim + settings.augment_dims * heads, heads, getattr(args, f"{side}_ffn_embed_dim"),
        self_attention=self_attention, cross_attention=cross_attention, encoder_dim=args.encoder_embed_dim,
        time_dependent=settings.time_dependent, activation_fn=args.activation_fn, function=settings.function,
    )
    return ODEBlock(func, settings, embed_dim, args.dropout, args.activation_dropout, name=side)


class NODELayer(nn.Module):
    """Base of the adapters: holds the ODE block as ``ode``."""

    def __init__(self, ode):
        super().__init__()
        self.ode = ode

    def upgrade_state_dict_named(self, state_dict, name):
        """Checkpoints of node-transformer 0.1 kept the block's parameters directly under the layer."""
        for key in [k for k in state_dict if k.startswith(tuple(f"{name}.{p}" for p in _BLOCK_KEYS_BEFORE_0_2))]:
            state_dict[f"{name}.ode.{key[len(name) + 1:]}"] = state_dict.pop(key)


class NODEEncoderLayer(NODELayer):
    """The whole encoder stack: dh/dt from SelfAttn and FFN (ode_function.py) with the source padding mask."""

    def __init__(self, args, settings):
        super().__init__(_ode_block(args, settings, "encoder", self_attention=True, cross_attention=False))

    def forward(self, x, encoder_padding_mask=None, attn_mask=None):
        return self.ode(x, SolveContext(keep=_keep(encoder_padding_mask, x), self_attn_mask=attn_mask,
                                        self_attn_padding_mask=encoder_padding_mask))


@with_incremental_state
class NODEDecoderLayer(NODELayer):
    """The whole decoder stack: dh/dt from CausalSelfAttn, CrossAttn(encoder_out) and FFN (ode_function.py).

    With ``incremental_state`` (generation on a fixed grid, see incremental.py) ``x`` is the newest
    position alone, and each evaluation's self-attention extends that evaluation's cache."""

    def __init__(self, args, settings):
        super().__init__(_ode_block(args, settings, "decoder", self_attention=True, cross_attention=True))

    def forward(self, x, encoder_out=None, encoder_padding_mask=None, incremental_state=None,
                self_attn_mask=None, self_attn_padding_mask=None, **unused):
        caches = None
        if incremental_state is not None:
            caches = EvaluationCaches(self, incremental_state, self.ode.func.self_attn)
        context = SolveContext(keep=_keep(self_attn_padding_mask, x), self_attn_mask=self_attn_mask,
                               self_attn_padding_mask=self_attn_padding_mask, memory=encoder_out,
                               memory_padding_mask=encoder_padding_mask, self_attn_caches=caches)
        x = self.ode(x, context)
        if caches is not None:
            caches.check_complete()
        return x, None, None

    def reorder_incremental_state(self, incremental_state, new_order):
        reorder_evaluation_caches(self, incremental_state, new_order)


class SeparatedNODEDecoderLayer(NODELayer):
    """--node-separated-decoder: a classic residual causal self-attention layer, then an ODE block of
    encoder-decoder attention + feed-forward."""

    def __init__(self, args, settings):
        super().__init__(_ode_block(args, settings, "decoder", self_attention=False, cross_attention=True))
        embed_dim = args.decoder_embed_dim
        self.self_attn_layer_norm = LayerNorm(embed_dim)
        self.self_attn = MultiheadAttention(
            embed_dim, args.decoder_attention_heads, dropout=args.attention_dropout, self_attention=True
        )
        self.dropout_module = FairseqDropout(args.dropout, module_name=type(self).__name__)

    def forward(self, x, encoder_out=None, encoder_padding_mask=None, incremental_state=None,
                self_attn_mask=None, self_attn_padding_mask=None, **unused):
        """With ``incremental_state`` (fixed grid) ``x`` is the newest position alone: the classic
        self-attention caches as fairseq's does, and the ODE, whose positions do not interact, solves
        for that position only."""
        q = self.self_attn_layer_norm(x)
        attn, _ = self.self_attn(q, q, q, key_padding_mask=self_attn_padding_mask, attn_mask=self_attn_mask,
                                 incremental_state=incremental_state, need_weights=False)
        x = x + self.dropout_module(attn)
        context = SolveContext(keep=_keep(self_attn_padding_mask, x), memory=encoder_out,
                               memory_padding_mask=encoder_padding_mask)
        return self.ode(x, context), None, None
