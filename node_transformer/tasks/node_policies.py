"""The NODE policies every task of this plugin owns (node_translation, node_masked_lm): NFE accounting in the
progress lines and TensorBoard, the RNODE regularisers added to the training loss, what happens when a
solve exceeds its step budget, the counts of skips and of --patience kept across a resume
(node_transformer/resume.py), and the save on SIGUSR1 that lets a run stop between two intervals and resume
exactly (node_transformer/preemption.py). A task is fairseq's own task with NODEPolicies first among its
bases and its config with NODEPolicyConfig's fields."""
import logging
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II
from odeint_ext import ODESolveError

from .. import nfe, patience, preemption, regularisation, resume

logger = logging.getLogger(__name__)

BUDGET_STATE_KEY = "node_budget"  # the skip counts in a checkpoint's task state


class NODETrainingStopped(Exception):
    """Raised to stop training on budget failures. Not a RuntimeError on purpose: fairseq's trainer
    saves ``crash.pt`` in --save-dir for any other exception before it re-raises."""


@dataclass
class NODEPolicyConfig(FairseqDataclass):
    node_budget_action: ChoiceEnum(["skip", "raise"]) = field(
        default="skip",
        metadata={"help": "when a training batch's forward or adjoint solve exceeds --node-max-num-steps: "
                          "'skip' the batch like fairseq skips an out-of-memory batch (gradients zeroed, "
                          "counted in node_budget_skips) or 'raise' to stop training (saving crash.pt)"},
    )
    node_max_consecutive_skips: int = field(
        default=10,
        metadata={"help": "stop training (saving crash.pt) after this many consecutive skipped batches: "
                          "dynamics that blew up should not burn hours silently"},
    )
    # fairseq's checkpoint options, read to resume the counts of skips and of --patience (resume.py)
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    reset_meters: bool = II("checkpoint.reset_meters")
    reset_optimizer: bool = II("checkpoint.reset_optimizer")


class NODEPolicies:
    """Mixed in before a fairseq task: its train, valid and optimizer steps, metrics and checkpoint state
    with the NODE policies. The task's __init__ calls ``init_node_policies(cfg)``."""

    owns_node_policies = True  # the model warns when built by a task without it
    regularisers_per_position = False  # True: each regulariser is a mean per real position (see regularisation.py)

    def init_node_policies(self, cfg):
        if cfg.node_max_consecutive_skips < 1:
            raise ValueError(
                f"--node-max-consecutive-skips must be >= 1, got {cfg.node_max_consecutive_skips}"
            )
        self.update_has_gradients = True
        resumed = resume.resumed_task_state(cfg)
        budget = resumed.get(BUDGET_STATE_KEY)
        self._restore_budget_count(budget)
        if budget:
            logger.info(f"resumed the solver-budget count: {self.total_skips} batch(es) skipped, "
                        f"the last {self.consecutive_skips} in a row")
        patience.restore(resumed.get(patience.STATE_KEY))
        preemption.install()

    # -- training -------------------------------------------------------------------------------

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        nfe.reset(model)
        try:
            loss, sample_size, logging_output = super().train_step(
                sample, model, regularisation.with_regularisers(criterion, per_position=self.regularisers_per_position), optimizer, update_num, ignore_grad
            )
        except ODESolveError as error:
            return self._skip_batch(error, model, optimizer, update_num)
        logging_output.update(nfe.collect(model, backward=True))
        self.update_has_gradients = True
        return loss, sample_size, logging_output

    def _skip_batch(self, error, model, optimizer, update_num):
        self.total_skips += 1
        self.consecutive_skips += 1
        where = f"update {update_num + 1}: {error}"
        if self.cfg.node_budget_action == "raise":
            raise NODETrainingStopped(f"{where} (--node-budget-action raise)") from error
        if self.consecutive_skips >= self.cfg.node_max_consecutive_skips:
            raise NODETrainingStopped(
                f"{self.consecutive_skips} consecutive batches exceeded the solver budget, last at {where}; "
                f"the dynamics have likely blown up (raise --node-max-num-steps or the tolerances, "
                f"or lower the learning rate). Stopping (--node-max-consecutive-skips "
                f"{self.cfg.node_max_consecutive_skips})."
            ) from error
        logger.warning(f"skipping batch at {where}")
        optimizer.zero_grad()
        self.update_has_gradients = False
        return 0.0, 0, {"node_budget_skips": 1}

    def optimizer_step(self, optimizer, model, update_num):
        if not self.update_has_gradients:
            return  # every batch since the gradients were zeroed was skipped: change nothing
        self.consecutive_skips = 0
        super().optimizer_step(optimizer, model, update_num)

    # -- validation and generation ---------------------------------------------------------------

    def valid_step(self, sample, model, criterion):
        nfe.reset(model)
        try:
            loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        except ODESolveError as error:
            logger.warning(f"validation batch not scored: {error}")
            return 0.0, 0, {"node_budget_skips": 1}
        logging_output.update(nfe.collect(model, backward=False))
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        skips = sum(log.get("node_budget_skips", 0) for log in logging_outputs)
        if skips:
            metrics.log_scalar_sum("node_budget_skips", skips, round=0)
        scored = [log for log in logging_outputs if "node_budget_skips" not in log]
        if scored:
            super().reduce_metrics(scored, criterion)
            nfe.log_metrics(scored)
            regularisation.log_metrics(scored)

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self):
        return {**super().state_dict(), BUDGET_STATE_KEY: {"total_skips": self.total_skips,
                                                           "consecutive_skips": self.consecutive_skips},
                patience.STATE_KEY: patience.state()}

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self._restore_budget_count(state_dict.pop(BUDGET_STATE_KEY, None))
        state_dict.pop(patience.STATE_KEY, None)  # restored when training resumes, not when loading a model
        super().load_state_dict(state_dict)

    def _restore_budget_count(self, saved):
        saved = saved or {}
        self.total_skips = saved.get("total_skips", 0)
        self.consecutive_skips = saved.get("consecutive_skips", 0)
