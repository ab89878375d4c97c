"""Carrying an unfinished converged run to another machine through the repository.

Run directories live outside the checkout, so a fresh clone loses no training; but a new machine starts
with none of them. `scripts/study.sh --converged --carry` copies into OUT/carry/NAME/ what each unfinished
run needs to resume, to be committed with the records:

    OUT/carry/NAME/
      train.log                        the run's log so far: its record's curves
      study_started_as                 the fingerprint it was started with (runner.STARTED_FILE)
      checkpoints/checkpoint_last.pt   fairseq's exact resume, --patience's count included

A run that finished training but not its translation (on 2 cores a slow model's test set takes hours) is
carried with its final model and each test set it finished (RunDir.translate's gen/SUBSET.json and the files
beside it): the runner restores it whole and translates the rest.

A runner that finds no run directory of the same flags resumes from there. What stays behind: the interval
checkpoints (a run that ends within --average-last intervals of the move averages the ones saved since) and
tb/ (TensorBoard's curves start again at the move). The carry is a run directory with only these files, so
the runner reads its state as it reads any run's.
"""
import shutil
from pathlib import Path
from typing import List

from .run_dir import RunDir

LAST_CHECKPOINT = "checkpoint_last.pt"


class CarryError(Exception):
    pass


def resumable_files(run: RunDir, started_file) -> List[Path]:
    """The files of RUN that resuming it needs, in one order for every run directory."""
    return [run.train_log, run.path / started_file, run.checkpoint(LAST_CHECKPOINT)]


def checkpoint_updates(path) -> int:
    """The updates a fairseq checkpoint was saved at; CarryError if it does not load (half-written, say)."""
    from .averaging import load_checkpoint

    try:
        return int(load_checkpoint(path)["optimizer_history"][-1]["num_updates"])
    except Exception as error:  # a truncated zip, a missing key: either way not a checkpoint to resume from
        raise CarryError(f"{path} does not load as a fairseq checkpoint ({type(error).__name__}: {error})") from None


def copy_resumable(source: RunDir, destination: RunDir, started_file) -> int:
    """Copy SOURCE's resumable files over DESTINATION's (each replaced whole, never half-written); returns the
    updates of the checkpoint copied, after checking that it loads."""
    updates = checkpoint_updates(source.checkpoint(LAST_CHECKPOINT))
    for path, target in zip(resumable_files(source, started_file), resumable_files(destination, started_file)):
        _copy_whole(path, target)
    return updates


def _copy_whole(path: Path, target: Path):
    """PATH copied over TARGET, replacing it whole: never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(path, partial)
    partial.replace(target)


def copy_trained(source: RunDir, destination: RunDir, started_file, final_checkpoint: Path) -> int:
    """Copy a run that finished training but not translating: its resumable files, its final model
    FINAL_CHECKPOINT and its finished test sets and shards (any others the copy held dropped); returns how
    many."""
    copy_resumable(source, destination, started_file)
    if destination.gen.exists():
        shutil.rmtree(destination.gen)
    finished = source.finished_translations()
    for path in [final_checkpoint, *(path for piece in finished for path in source.translation_files(piece))]:
        _copy_whole(path, destination.path / path.relative_to(source.path))
    return len(finished)
