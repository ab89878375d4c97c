"""The ``node_transformer`` model: a fairseq Transformer whose encoder and/or decoder layer stack is
one Neural-ODE block.

A NODE side is fairseq's own TransformerEncoder/TransformerDecoder (embeddings, positions, final
layer norm, output projection, beam reordering) whose layer list holds a single ODE block.
"""
import copy
import logging

from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import TransformerDecoder, TransformerEncoder, TransformerModel
from fairseq.models.transformer.transformer_legacy import base_architecture

from ..modules import NODEDecoderLayer, NODEEncoderLayer, SeparatedNODEDecoderLayer
from ..options import NodeSettings, add_node_args, fill_node_defaults

logger = logging.getLogger(__name__)

MISSING_TASK_WARNING = (
    "NODE blocks without --task node_translation: no NFE metrics (nfe_enc_fwd, ...) in the logs, "
    "no NFE report from fairseq-generate, and a solve that exceeds --node-max-num-steps stops "
    "training instead of skipping its batch. Add --task node_translation."
)


def unapplied_regulariser(settings, owns_policies):
    """The regulariser flag a model built by a task without the NODE policies could not add to its loss:
    generating from such a checkpoint is fine, training with it is not. None when there is none."""
    if not settings.regularisers or owns_policies:
        return None
    return "--node-kinetic-reg" if settings.kinetic_reg is not None else "--node-jacobian-reg"


def _one_layer_prenorm(args, side):
    """Args for a NODE side: one 'layer' (the ODE block) and a final layer norm after it."""
    args = copy.copy(args)
    setattr(args, f"{side}_layers", 1)
    setattr(args, f"{side}_layers_to_keep", None)
    setattr(args, f"{side}_layerdrop", 0.0)
    setattr(args, f"{side}_normalize_before", True)
    args.checkpoint_activations = False
    return args


class NODETransformerEncoder(TransformerEncoder):
    def __init__(self, args, dictionary, embed_tokens, settings):
        self.node_settings = settings
        super().__init__(_one_layer_prenorm(args, "encoder"), dictionary, embed_tokens)

    def build_encoder_layer(self, cfg):
        return NODEEncoderLayer(self.args, self.node_settings)


class NODETransformerDecoder(TransformerDecoder):
    """Generation is exact either way: the scores of step k are those of a full forward pass over the
    first k tokens. On a fixed grid each step computes the new position alone, through fairseq's
    incremental state (modules/incremental.py); an adaptive solver's steps depend on the whole state,
    so there each step recomputes the full prefix. ``incremental`` can be switched off to compare."""

    def __init__(self, args, dictionary, embed_tokens, settings):
        self.node_settings = settings
        super().__init__(_one_layer_prenorm(args, "decoder"), dictionary, embed_tokens)
        self.incremental = not settings.adaptive

    def build_decoder_layer(self, cfg, no_encoder_attn=False):
        if self.args.node_separated_decoder:
            return SeparatedNODEDecoderLayer(self.args, self.node_settings)
        return NODEDecoderLayer(self.args, self.node_settings)

    def extract_features(self, prev_output_tokens, encoder_out, incremental_state=None,
                         full_context_alignment=False, alignment_layer=None, alignment_heads=None):
        return super().extract_features(
            prev_output_tokens, encoder_out, incremental_state if self.incremental else None,
            full_context_alignment, alignment_layer, alignment_heads,
        )


@register_model("node_transformer")
class NODETransformerModel(TransformerModel):
    """Transformer with Neural-ODE encoder (``--node-encoder``) and/or decoder (``--node-decoder``)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        add_node_args(parser)

    @classmethod
    def build_model(cls, args, task):
        node_base_architecture(args)
        # Every --node-* check, once, before anything is built. fairseq hands build_encoder/build_decoder
        # a TransformerConfig copied from args (extra attributes included), so the settings reach them
        # that way; they leave args afterwards: a checkpoint holds options, not objects.
        args._node_settings = settings = NodeSettings.from_args(args)
        try:
            owns_policies = getattr(task, "owns_node_policies", False)
            if (args.node_encoder or args.node_decoder) and not owns_policies:
                logger.warning(MISSING_TASK_WARNING)
            model = super().build_model(args, task)
        finally:
            del args._node_settings
        model.unapplied_regularisers = unapplied_regulariser(settings, owns_policies)
        return model

    def forward(self, *args, **kwargs):
        if self.training and self.unapplied_regularisers:
            raise ValueError(f"{self.unapplied_regularisers} is added to the training loss and logged by --task "
                             f"node_translation, which this model was not built with")
        return super().forward(*args, **kwargs)

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        if args.node_encoder:
            return NODETransformerEncoder(args, src_dict, embed_tokens, args._node_settings)
        return TransformerEncoder(args, src_dict, embed_tokens)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        if args.node_decoder:
            return NODETransformerDecoder(args, tgt_dict, embed_tokens, args._node_settings)
        return TransformerDecoder(args, tgt_dict, embed_tokens, no_encoder_attn=False)

    def node_blocks(self):
        """{"enc": block, "dec": block} for the sides that are NODE; each block has ``.stats``."""
        blocks = {}
        if isinstance(self.encoder, NODETransformerEncoder):
            blocks["enc"] = self.encoder.layers[0].ode
        if isinstance(self.decoder, NODETransformerDecoder):
            blocks["dec"] = self.decoder.layers[0].ode
        return blocks


@register_model_architecture("node_transformer", "node_transformer")
def node_base_architecture(args):
    """fairseq's Transformer-base defaults plus the --node-* defaults."""
    fill_node_defaults(args)
    base_architecture(args)


@register_model_architecture("node_transformer", "node_transformer_tiny")
def node_transformer_tiny(args):
    """Multi30k size: embed 128, FFN 256, 4 heads (4+4 layers on the classic sides)."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 128)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 256)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.encoder_layers = getattr(args, "encoder_layers", 4)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 128)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", 256)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 4)
    args.decoder_layers = getattr(args, "decoder_layers", 4)
    args.dropout = getattr(args, "dropout", 0.3)
    node_base_architecture(args)
