"""fairseq's ``--patience`` carried across a resume.

fairseq counts the validations without improvement in attributes of ``fairseq_cli.train.should_stop_early``
(``best`` and ``num_runs``) and saves neither in a checkpoint (fairseq issue #3531): a run resumed from
checkpoint_last.pt counts again from zero, against the first validation after the resume instead of the
best one, and may train up to --patience validations longer than the same run left alone. The
node_translation task saves both in every checkpoint's task state and puts them back when fairseq-train
resumes (node_transformer/resume.py), as fairseq itself puts back the best loss of ``checkpoint_best.pt``.
"""
import logging
import sys
from typing import Optional

from .resume import TRAIN_MODULE

logger = logging.getLogger(__name__)

STATE_KEY = "patience"


def _counter():
    """``should_stop_early`` of a running fairseq-train, or None elsewhere (generation, hub, tests)."""
    return getattr(sys.modules.get(TRAIN_MODULE), "should_stop_early", None)


def state() -> Optional[dict]:
    """The count to save with a checkpoint, or None before the first validation or outside training."""
    counter = _counter()
    if getattr(counter, "best", None) is None:
        return None
    return {"best": float(counter.best), "validations_since_best": int(counter.num_runs)}


def restore(saved: Optional[dict]):
    counter = _counter()
    if counter is None or not saved:
        return
    counter.best = saved["best"]
    counter.num_runs = saved["validations_since_best"]
    logger.info(f"resumed --patience: best valid loss {counter.best:.3f}, "
                f"{counter.num_runs} validation(s) since without improvement")
