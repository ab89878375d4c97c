"""The task state of the checkpoint fairseq-train is about to resume from.

fairseq 0.12 saves ``task.state_dict()`` in every checkpoint but hands it back to the task only when it loads
a model (``checkpoint_utils.load_model_ensemble_and_task``), never when fairseq-train resumes
(``Trainer.load_checkpoint``): whatever a task counts there would start again from zero on every resume. The
plugin's tasks read it here once, when fairseq-train builds them, and put back what they count: --patience's
validations (node_transformer/patience.py) and the batches skipped over the solver's budget
(node_transformer/tasks/node_policies.py).
"""
import os
import sys

TRAIN_MODULE = "fairseq_cli.train"  # fairseq-train's loop; imported only by fairseq-train
LAST_CHECKPOINT = "checkpoint_last.pt"


def resumed_task_state(cfg) -> dict:
    """The task state saved in the checkpoint fairseq-train is about to resume from; empty when it starts
    afresh, resumes from another file (--restore-file) or resets its meters or optimizer (fairseq then
    forgets the best loss too), and outside fairseq-train. ``cfg`` holds the task's copies of the checkpoint
    options."""
    resumes = cfg.restore_file == LAST_CHECKPOINT and not (cfg.reset_meters or cfg.reset_optimizer)
    if TRAIN_MODULE not in sys.modules or not resumes:
        return {}
    path = os.path.join(cfg.save_dir, LAST_CHECKPOINT)
    if not os.path.isfile(path):
        return {}
    from fairseq import checkpoint_utils

    return checkpoint_utils.load_checkpoint_to_cpu(path).get("task_state") or {}
