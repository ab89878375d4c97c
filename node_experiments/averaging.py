"""A run's final model: the average of its last interval checkpoints, model weights only.

    python -m node_experiments.averaging RUN/checkpoints --last 10 --out RUN/checkpoints/checkpoint_averaged.pt

The published Multi30k recipes average their last checkpoints; so does the converged study. The average
keeps the newest checkpoint's configuration and records, and none of its optimiser state, so it is a
model to translate with (fairseq-generate --path, node_transformer.hub), not one to resume from.
"""
import argparse
import re
import sys
from pathlib import Path
from typing import List

import torch

INTERVAL_CHECKPOINT = re.compile(r"checkpoint_\d+_(\d+)\.pt$")  # fairseq's --save-interval-updates names


class AveragingError(ValueError):
    pass


def interval_checkpoints(directory) -> List[Path]:
    """The interval checkpoints in DIRECTORY, oldest first (by their update count)."""
    found = [(int(match[1]), path) for path in Path(directory).glob("checkpoint_*_*.pt")
             if (match := INTERVAL_CHECKPOINT.search(path.name))]
    return [path for _, path in sorted(found)]


def load_checkpoint(path) -> dict:
    """A fairseq checkpoint as saved, under torch's safe loading (the plugin's allow-list)."""
    from node_transformer import checkpoint_safety  # noqa: F401  (fairseq checkpoints under torch's safe loading)

    # torch.load as saved (fairseq's loader would turn its cfg into an OmegaConf object, which safe
    # loading then refuses to read back)
    return torch.load(path, map_location="cpu")


def save_model(state, out):
    """Writes the checkpoint STATE to OUT without its optimiser state: a model to translate with, not one to
    resume from. Never a half-written file where a translation looks for one."""
    state.pop("last_optimizer_state", None)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(str(out) + ".part")
    torch.save(state, partial)
    partial.replace(out)


def tied_as_in(saved, weights):
    """WEIGHTS with the names that share one tensor in SAVED (tied weights: --share-all-embeddings ties the
    encoder's and decoder's embeddings and the output projection) sharing one tensor again, so that the file
    holds each once, as fairseq's own checkpoints do."""
    first_of = {}
    for name, value in saved.items():
        view = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.stride())
        weights[name] = weights[first_of.setdefault(view, name)]
    return weights


def average_checkpoints(paths, out):
    """Writes the mean of the checkpoints' model weights to OUT (a fairseq checkpoint without optimiser
    state); returns the names of the checkpoints it averaged."""
    if not paths:
        raise AveragingError("no checkpoints to average")
    total, newest = None, None
    for path in paths:
        newest = load_checkpoint(path)
        weights = newest["model"]
        if total is None:
            total = {name: value.double() for name, value in weights.items()}
        elif weights.keys() != total.keys():
            raise AveragingError(f"{path}: its weights are not those of {paths[0]} (another model)")
        else:
            for name, value in weights.items():
                total[name] += value.double()
    newest["model"] = tied_as_in(newest["model"], {name: (value / len(paths)).to(newest["model"][name].dtype)
                                                   for name, value in total.items()})
    newest["averaged_checkpoints"] = [Path(path).name for path in paths]
    save_model(newest, out)
    return [Path(path).name for path in paths]


def average_last(directory, last, out):
    """Averages the LAST newest interval checkpoints of DIRECTORY into OUT; returns their names."""
    paths = interval_checkpoints(directory)[-last:]
    if not paths:
        raise AveragingError(f"{directory}: no interval checkpoints (checkpoint_EPOCH_UPDATES.pt) to average")
    return average_checkpoints(paths, out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.averaging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, help="a run's checkpoints/ directory")
    parser.add_argument("--last", type=int, default=10, help="how many of the newest interval checkpoints (default 10)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.last < 1:
        parser.error(f"--last must be at least 1, got {args.last}")
    try:
        names = average_last(args.checkpoints, args.last, args.out)
    except AveragingError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    print(f"averaged {len(names)} checkpoints ({', '.join(names)}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
