"""ODE blocks in the call conventions of fairseq's encoder and decoder layers, so that fairseq's own
TransformerEncoder/TransformerDecoder run them in place of their layer stacks."""
from fairseq.modules import FairseqDropout, LayerNorm, MultiheadAttention
from torch import nn

from .ode_block import ODEBlock
from .ode_function import ODEFunction


def _keep(padding_mask, x):
    """B x T padding mask (True = pad) -> T x B x 1 multiplier (1 real, 0 pad), or None."""
    return None if padding_mask is None else (~padding_mask).transpose(0, 1).unsqueeze(-1).to(x)


def _state_width(embed_dim, heads, settings):
    return embed_dim + settings.augment_dims * heads


class NODEEncoderLayer(ODEBlock):
    """The whole encoder stack: dh/dt = FFN(SelfAttn(h)) with the source padding mask."""

    def __init__(self, args, settings):
        embed_dim, heads = args.encoder_embed_dim, args.encoder_attention_heads
        func = ODEFunction(
            _state_width(embed_dim, heads, settings), heads, args.encoder_ffn_embed_dim,
            self_attention=True, cross_attention=False, time_dependent=settings.time_dependent,
            activation_fn=args.activation_fn,
        )
        super().__init__(func, settings, embed_dim, args.dropout, args.activation_dropout, name="encoder")

    def forward(self, x, encoder_padding_mask=None, attn_mask=None):
        return super().forward(x, _keep(encoder_padding_mask, x), attn_mask, encoder_padding_mask, None, None)


class NODEDecoderLayer(ODEBlock):
    """The whole decoder stack: dh/dt = FFN(CrossAttn(CausalSelfAttn(h), encoder_out))."""

    def __init__(self, args, settings, separated=False):
        embed_dim, heads = args.decoder_embed_dim, args.decoder_attention_heads
        func = ODEFunction(
            _state_width(embed_dim, heads, settings), heads, args.decoder_ffn_embed_dim,
            self_attention=not separated, cross_attention=True, encoder_dim=args.encoder_embed_dim,
            time_dependent=settings.time_dependent, activation_fn=args.activation_fn,
        )
        super().__init__(func, settings, embed_dim, args.dropout, args.activation_dropout, name="decoder")

    def forward(self, x, encoder_out=None, encoder_padding_mask=None, incremental_state=None,
                self_attn_mask=None, self_attn_padding_mask=None, **unused):
        assert incremental_state is None, "a NODE decoder recomputes the whole prefix; it keeps no cache"
        x = super().forward(x, _keep(self_attn_padding_mask, x), self_attn_mask, self_attn_padding_mask,
                            encoder_out, encoder_padding_mask)
        return x, None, None


class SeparatedNODEDecoderLayer(nn.Module):
    """--node-separated-decoder: a classic residual causal self-attention layer, then an ODE block of
    encoder-decoder attention + feed-forward."""

    def __init__(self, args, settings):
        super().__init__()
        embed_dim = args.decoder_embed_dim
        self.self_attn_layer_norm = LayerNorm(embed_dim)
        self.self_attn = MultiheadAttention(
            embed_dim, args.decoder_attention_heads, dropout=args.attention_dropout, self_attention=True
        )
        self.dropout_module = FairseqDropout(args.dropout, module_name=type(self).__name__)
        self.ode = NODEDecoderLayer(args, settings, separated=True)

    @property
    def stats(self):
        return self.ode.stats

    @property
    def settings(self):
        return self.ode.settings

    def forward(self, x, encoder_out=None, encoder_padding_mask=None, incremental_state=None,
                self_attn_mask=None, self_attn_padding_mask=None, **unused):
        assert incremental_state is None, "a NODE decoder recomputes the whole prefix; it keeps no cache"
        q = self.self_attn_layer_norm(x)
        attn, _ = self.self_attn(q, q, q, key_padding_mask=self_attn_padding_mask, attn_mask=self_attn_mask,
                                 need_weights=False)
        x = x + self.dropout_module(attn)
        return self.ode(x, encoder_out, encoder_padding_mask, None, self_attn_mask, self_attn_padding_mask)
