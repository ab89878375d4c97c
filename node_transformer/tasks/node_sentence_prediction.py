"""``node_sentence_prediction``: fairseq's sentence-prediction task (fine-tuning) with the NODE policies."""
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from .node_policies import NODEPolicies, NODEPolicyConfig


@dataclass
class NODESentencePredictionConfig(SentencePredictionConfig, NODEPolicyConfig):
    pass


@register_task("node_sentence_prediction", dataclass=NODESentencePredictionConfig)
class NODESentencePredictionTask(NODEPolicies, SentencePredictionTask):
    """Fine-tuning a NODE encoder on a sentence (pair) classification: the NODE policies of pretraining,
    the regularisers a mean per real position."""

    regularisers_per_position = True

    def __init__(self, cfg, data_dictionary, label_dictionary):
        super().__init__(cfg, data_dictionary, label_dictionary)
        self.init_node_policies(cfg)
