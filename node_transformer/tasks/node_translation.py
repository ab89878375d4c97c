"""``node_translation``: fairseq's translation task with the NODE policies (tasks/node_policies.py), and the
NFE of generation: per sentence, printed by fairseq-generate when it ends."""
import atexit
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from odeint_ext import ODESolveError

from .. import nfe
from .node_policies import NODEPolicies, NODEPolicyConfig, NODETrainingStopped  # noqa: F401  (re-exported)


@dataclass
class NODETranslationConfig(TranslationConfig, NODEPolicyConfig):
    pass


@register_task("node_translation", dataclass=NODETranslationConfig)
class NODETranslationTask(NODEPolicies, TranslationTask):
    """Translation with Neural-ODE models: logs ``nfe_{enc,dec}_{fwd,bwd}`` and ``node_budget_skips``, and
    adds the RNODE regularisers to the training loss (``node_{kinetic,jacobian}_{enc,dec}``)."""

    report_generation_nfe_at_exit = True  # fairseq-generate's NFE line; node_transformer.hub reports its own

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.init_node_policies(cfg)
        self.generation_nfe = {"sentences": 0, "enc": 0, "dec": 0, "steps": 0}

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        for model in models:
            nfe.reset(model)
        try:
            hypos = super().inference_step(generator, models, sample, prefix_tokens, constraints)
        except ODESolveError as error:
            raise RuntimeError(
                f"generation stopped: {error}. Allow more steps with "
                "--model-overrides \"{'node_max_num_steps': N}\" or loosen the tolerances."
            ) from error
        self._count_generation_nfe(models, sample)
        return hypos

    def _count_generation_nfe(self, models, sample):
        if not self.generation_nfe["sentences"] and self.report_generation_nfe_at_exit:
            atexit.register(self._report_generation_nfe)
        sentences = sample["net_input"]["src_tokens"].shape[0]
        self.generation_nfe["sentences"] += sentences
        for model in models:
            for side, block in nfe.node_blocks(model).items():
                # Every sentence of the batch went through each of the batch's solves.
                self.generation_nfe[side] += sentences * block.stats.nfe_forward
                if side == "dec":
                    self.generation_nfe["steps"] += sentences * block.stats.solves

    def _report_generation_nfe(self):
        counts = self.generation_nfe
        n = counts["sentences"]
        per_sentence = {nfe.SIDES[side]: counts[side] / n for side in nfe.SIDES if counts[side]}
        if per_sentence:
            print(nfe.format_generation_nfe(n, per_sentence, counts["steps"] / n), flush=True)
