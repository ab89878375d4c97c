"""fairseq-train saves ``checkpoint_last.pt`` and stops when asked (SIGUSR1), between two updates.

fairseq saves only at its intervals (--save-interval-updates, each with a validation), so a machine taken
away between two saves loses every update since the last one: for a NODE run saving every 200 updates at
30 s an update, more than an hour and a half. On SIGUSR1 the plugin's tasks let the update in progress
finish, save ``checkpoint_last.pt`` as fairseq saves it (the data iterator's position, the optimizer, the
learning-rate schedule, --patience's count: the resume is exact) and exit with PREEMPTED_EXIT. They save
nothing else and validate nothing, so the validations, --patience and the interval checkpoints of the
resumed run are those of a run never stopped. The same command resumes it. One process per run: under
distributed training the signal reaches only the process it is sent to.
"""
import functools
import logging
import os
import signal
import sys
import threading

from .resume import LAST_CHECKPOINT, TRAIN_MODULE

logger = logging.getLogger(__name__)

SIGNAL = signal.SIGUSR1  # as PyTorch Lightning's and submitit's requeue signals: a user signal, not a kill
PREEMPTED_EXIT = 75  # sysexits' EX_TEMPFAIL: stopped, to be resumed

_requested = False


def install():
    """In a running fairseq-train, once: SIGUSR1 asks for the save, and fairseq's ``validate_and_save``,
    which fairseq-train calls after every update, makes it. Elsewhere (generation, hub, tests) nothing."""
    train = sys.modules.get(TRAIN_MODULE)
    if train is None or getattr(train.validate_and_save, "saves_on_request", False):
        return
    if threading.current_thread() is not threading.main_thread():  # only the main thread may take signals
        return
    signal.signal(SIGNAL, _request)
    train.validate_and_save = _saving_on_request(train.validate_and_save)


def _request(signum, frame):
    global _requested
    _requested = True


def _modified(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _saving_on_request(validate_and_save):
    @functools.wraps(validate_and_save)
    def saving_on_request(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch):
        last = os.path.join(cfg.checkpoint.save_dir, LAST_CHECKPOINT)
        before = _modified(last)
        valid_losses, should_stop = validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)
        if not _requested or should_stop:  # fairseq saves and ends a run that stops here by itself
            return valid_losses, should_stop
        from fairseq import checkpoint_utils

        if _modified(last) == before:  # not saved at an interval this very update
            checkpoint_utils.save_checkpoint(cfg.checkpoint, trainer, epoch_itr, None)
        if _modified(last) == before:
            logger.warning(f"{signal.Signals(SIGNAL).name}: no {LAST_CHECKPOINT} written (--no-save or "
                           f"--no-last-checkpoints): stopping at update {trainer.get_num_updates()} all the same")
        else:
            logger.info(f"{signal.Signals(SIGNAL).name}: saved {LAST_CHECKPOINT} at update "
                        f"{trainer.get_num_updates()}; stopping (exit {PREEMPTED_EXIT}), to resume from it")
        sys.exit(PREEMPTED_EXIT)

    saving_on_request.saves_on_request = True
    return saving_on_request
