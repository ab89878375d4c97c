"""``node_masked_lm``: fairseq's masked-LM task with the NODE policies (tasks/node_policies.py)."""
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

from .node_policies import NODEPolicies, NODEPolicyConfig


@dataclass
class NODEMaskedLMConfig(MaskedLMConfig, NODEPolicyConfig):
    pass


@register_task("node_masked_lm", dataclass=NODEMaskedLMConfig)
class NODEMaskedLMTask(NODEPolicies, MaskedLMTask):
    """Masked-LM pretraining of a NODE encoder (``--arch node_roberta_tiny --node-encoder``): logs
    ``nfe_enc_{fwd,bwd}`` and ``node_budget_skips``, and adds the RNODE regularisers to the loss, each a mean
    per real position as the masked-LM loss is a mean per masked token."""

    regularisers_per_position = True

    def __init__(self, cfg, dictionary=None):
        super().__init__(cfg, dictionary)
        self.init_node_policies(cfg)
