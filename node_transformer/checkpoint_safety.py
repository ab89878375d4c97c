"""Let torch >= 2.6's safe checkpoint loading (``weights_only=True``) read fairseq checkpoints.

fairseq 0.12 calls ``torch.load`` with the default ``weights_only``, which torch 2.6 turned to True;
its checkpoints hold a few plain classes the safe unpickler does not know. Allow-list exactly those
(importing this user-dir does it, before fairseq-generate or fairseq-train --restore-file load
anything) instead of switching safe loading off.
"""
import argparse

import numpy as np
import torch


def _numpy_array_classes():
    """What pickling an int64 numpy array needs: the array and dtype classes and the rebuild function.
    ``--eval-bleu`` stores its n-gram counts in the checkpoint's metrics as such arrays."""
    core = getattr(np, "_core", None) or np.core  # numpy >= 2 renamed numpy.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.int64))]


FAIRSEQ_CHECKPOINT_CLASSES = [
    argparse.Namespace,  # cfg.model of every model configured through argparse (legacy architectures)
    *_numpy_array_classes(),
]


def allow_fairseq_checkpoint_classes():
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 has no safe-globals list
        add_safe_globals(FAIRSEQ_CHECKPOINT_CLASSES)


allow_fairseq_checkpoint_classes()
