"""The ``node_roberta`` model: fairseq's RoBERTa whose encoder layer stack is one Neural-ODE block.

With ``--node-encoder`` the sentence encoder is the translation model's NODE encoder (fairseq's
TransformerEncoder holding one ODE block: every --node-* option applies); without it the same
architecture is the classic RoBERTa of that size, so that a comparison differs in the block alone. The
embeddings, the LM head, the classification heads and the hub interface are fairseq's RoBERTa's.
"""
import logging

from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import RobertaEncoder, RobertaModel
from fairseq.models.roberta.model import base_architecture as roberta_base_architecture
from fairseq.modules.transformer_sentence_encoder import init_bert_params

from ..options import NodeSettings, add_node_args, fill_node_defaults
from .node_transformer import MISSING_TASK_WARNING, NODETransformerEncoder, unapplied_regulariser

logger = logging.getLogger(__name__)

# RoBERTa's options that read or change a layer stack's per-layer sub-modules, which one ODE block does not
# have: {option: its value when unused}.
PER_LAYER_OPTIONS = {
    "encoder_layers_to_keep": None,
    "encoder_layerdrop": 0.0,
    "mha_reg_scale_factor": 0.0,
    "ffn_reg_scale_factor": 0.0,
    "mha_heads_to_keep": -1,
    "ffn_blocks_to_remove": -1,
    "checkpoint_activations": False,
    "offload_activations": False,
    "quant_noise_pq": 0,
    "quant_noise_scalar": 0,
}
# The --node-* options of a decoder, which a masked language model does not have.
DECODER_OPTIONS = ("node_decoder", "node_separated_decoder", "node_detach_encoder")


def _flag(name):
    return "--" + name.replace("_", "-")


def check_node_roberta_args(args):
    """Refuse what a NODE encoder cannot honour, naming the flag."""
    for name in DECODER_OPTIONS:
        if getattr(args, name, False):
            raise ValueError(f"{_flag(name)}: a masked language model has no decoder (use --node-encoder)")
    if not args.node_encoder:
        return
    for name, unused in PER_LAYER_OPTIONS.items():
        value = getattr(args, name, unused)
        if value is not None and value != unused:
            raise ValueError(f"{_flag(name)} reads per-layer sub-modules, which a NODE encoder (one ODE block) "
                             f"does not have; leave it unset with --node-encoder")


class NODERobertaEncoder(RobertaEncoder):
    def build_encoder(self, args, dictionary, embed_tokens):
        if not args.node_encoder:
            return super().build_encoder(args, dictionary, embed_tokens)
        encoder = NODETransformerEncoder(args, dictionary, embed_tokens, args._node_settings)
        encoder.apply(init_bert_params)
        return encoder


@register_model("node_roberta")
class NODERobertaModel(RobertaModel):
    """RoBERTa with a Neural-ODE encoder (``--node-encoder``)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        add_node_args(parser)

    @classmethod
    def build_model(cls, args, task):
        node_roberta_architecture(args)
        settings = NodeSettings.from_args(args)  # every --node-* check, before anything is built
        check_node_roberta_args(args)
        owns_policies = getattr(task, "owns_node_policies", False)
        if args.node_encoder and not owns_policies:
            logger.warning(MISSING_TASK_WARNING.replace("node_translation", "node_masked_lm"))
        if not hasattr(args, "max_positions"):
            if not hasattr(args, "tokens_per_sample"):
                args.tokens_per_sample = task.max_positions()
            args.max_positions = args.tokens_per_sample
        # The settings reach the encoder through args, as in node_transformer; they leave args afterwards: a
        # checkpoint holds options, not objects.
        args._node_settings = settings
        try:
            model = cls(args, NODERobertaEncoder(args, task.source_dictionary))
        finally:
            del args._node_settings
        model.unapplied_regularisers = unapplied_regulariser(settings, owns_policies)
        return model

    def forward(self, *args, **kwargs):
        if self.training and getattr(self, "unapplied_regularisers", None):
            raise ValueError(f"{self.unapplied_regularisers} is added to the training loss and logged by the "
                             f"NODE tasks (--task node_masked_lm, node_sentence_prediction), which this model "
                             f"was not built with")
        return super().forward(*args, **kwargs)

    @classmethod
    def from_pretrained(cls, run, checkpoint_file="checkpoint_best.pt", data_name_or_path=None, **unused):
        """fairseq's RoBERTa hub interface on a run directory, with the run's own text preparation
        (node_transformer/roberta_hub.py)."""
        from .. import roberta_hub

        return roberta_hub.load(run, checkpoint_file, data_name_or_path)

    def node_blocks(self):
        """{"enc": block} when the encoder is NODE; the block has ``.stats``."""
        encoder = self.encoder.sentence_encoder
        return {"enc": encoder.layers[0].ode} if isinstance(encoder, NODETransformerEncoder) else {}


@register_model_architecture("node_roberta", "node_roberta")
def node_roberta_architecture(args):
    """RoBERTa-base sizes (12 classic layers, embed 768, FFN 3072, 12 heads) and the --node-* defaults."""
    fill_node_defaults(args)
    roberta_base_architecture(args)


@register_model_architecture("node_roberta", "node_roberta_tiny")
def node_roberta_tiny(args):
    """The Multi30k size of node_transformer_tiny: embed 128, FFN 256, 4 heads (4 layers when classic)."""
    args.encoder_layers = getattr(args, "encoder_layers", 4)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 128)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 256)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    node_roberta_architecture(args)
