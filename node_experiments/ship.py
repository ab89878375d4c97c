"""A trained model to hand on: a run directory with one weights-only checkpoint and the data record that
translating needs, small enough to live in the repository. `node_transformer.hub.load(OUT)`,
`scripts/translate.sh OUT` and `scripts/generate.sh OUT` take it as they take the run it came from.

    python -m node_experiments.ship RUN OUT [--checkpoint checkpoint_averaged.pt] [--record RECORD.json] [--max-mb 8]

    OUT/checkpoints/checkpoint_best.pt   the model's weights and configuration; no optimiser state
    OUT/data/                            RUN/data: the dictionaries, BPE codes and preparation recipe
    OUT/MODEL.md                         what it is: the experiment, its flags, training and scores (from RECORD,
                                         a converged-study record, when given)
"""
import argparse
import shutil
import sys
from pathlib import Path

from .run_dir import RunDir

SHIPPED = "checkpoint_best.pt"  # the name hub.load, translate.sh and generate.sh look for by default
DEFAULT_MAX_MB = 8.0


class ShipError(ValueError):
    pass


def weights_only(checkpoint, out):
    """Writes CHECKPOINT (a fairseq checkpoint, loaded safely) to OUT without its optimiser state."""
    from .averaging import load_checkpoint, save_model

    state = load_checkpoint(checkpoint)
    state["shipped_from"] = str(Path(checkpoint).name)
    save_model(state, out)


def model_card(run: RunDir, checkpoint: Path, record=None) -> str:
    name = record.experiment if record else run.name
    lines = [f"# {name}", "",
             f"Shipped from `{run.name}/checkpoints/{checkpoint.name}` by `python -m node_experiments.ship`: model "
             "weights only (no optimiser state: translate with it, do not resume from it).", ""]
    if record is not None:
        lines += [f"- Trained: {record.updates} updates ({record.status}), best validation loss "
                  f"{record.best_valid_loss:.3f} at update {record.best_at_update}, "
                  f"{record.seconds_per_update:.2f} s/update on {record.machine or 'an unrecorded machine'}.",
                  f"- Flags: `{' '.join(record.flags)}`", ""]
        if record.translation:
            lines += ["| test set | tokenized BLEU | sacreBLEU |", "|---|---|---|"]
            lines += [f"| {name} | {score['tokenized_bleu']:.2f} | {score['sacrebleu']:.2f} |"
                      for name, score in record.translation.items() if "tokenized_bleu" in score]
            lines.append("")
    lines += ["```bash", "echo 'A man in a blue shirt is playing the guitar.' | scripts/translate.sh "
              f"models/{name}", "```"]
    return "\n".join(lines) + "\n"


def ship(run, out, checkpoint="checkpoint_averaged.pt", record=None, max_mb=DEFAULT_MAX_MB) -> Path:
    """OUT as a run directory holding RUN's CHECKPOINT (weights only) and RUN's data record; refused, and
    nothing left at OUT, when the checkpoint is missing, RUN records no data, or the model exceeds MAX_MB."""
    run, out = RunDir(run), RunDir(out)
    source = run.checkpoint(checkpoint)
    if not source.is_file():
        raise ShipError(f"no checkpoint {checkpoint} in {run.checkpoints}")
    if run.recorded_data() is None:
        raise ShipError(f"{run.path} records no data ({run.data}/prepared.json missing): translating it needs "
                        "the dictionaries and BPE codes (python -m node_experiments.run_dir record DATA RUN)")
    if out.path.exists():
        raise ShipError(f"{out.path} exists: ship into a new directory")
    try:
        weights_only(source, out.checkpoint(SHIPPED))
        megabytes = out.checkpoint(SHIPPED).stat().st_size / 2**20
        if megabytes > max_mb:
            raise ShipError(f"{source}: the model is {megabytes:.1f} MB without optimiser state, over --max-mb {max_mb:g}")
        shutil.copytree(run.data, out.data)
        (out.path / "MODEL.md").write_text(model_card(run, source, record))
    except BaseException:
        shutil.rmtree(out.path, ignore_errors=True)
        raise
    return out.checkpoint(SHIPPED)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory (scripts/train.sh, the study runner)")
    parser.add_argument("out", type=Path, help="the new model directory, e.g. models/NAME")
    parser.add_argument("--checkpoint", default="checkpoint_averaged.pt",
                        help="a file in RUN/checkpoints, or a path (default: the study's averaged final model)")
    parser.add_argument("--record", type=Path, help="the run's converged-study record, for MODEL.md")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="refuse a bigger model (default 8)")
    args = parser.parse_args(argv)
    record = None
    if args.record is not None:
        from .study_record import StudyRecord

        if not args.record.is_file():
            parser.error(f"--record {args.record}: no such file")
        record = StudyRecord.from_json(args.record.read_text())
    try:
        path = ship(args.run, args.out, args.checkpoint, record, args.max_mb)
    except ShipError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    print(f"shipped {path} ({path.stat().st_size / 2**20:.1f} MB) with {RunDir(args.out).data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
