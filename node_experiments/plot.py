"""Figures of NODE-Transformer runs from their TensorBoard logs (the study's pictures).

    python -m node_experiments.plot RUN_DIR [RUN_DIR ...] --out DIR

A RUN_DIR is a run directory written by scripts/train.sh (holding tb/) or a --tensorboard-logdir itself
(holding train_inner/, train/, valid/). Writes PNG and SVG figures to DIR: loss, best validation loss
against updates and against wall-clock hours, forward/backward NFE of encoder and decoder, the RNODE
regularisers' integrals when a run logged them, the gradient norm, and skipped batches when there were any. Runs are labelled by their directory name; a metric a run does not have
(a classic encoder has no encoder NFE) is left out of the figure.
"""
import argparse
import logging
import sys
from pathlib import Path

from .run_dir import RunDir
from .training_log import BUDGET_SKIPS_KEY, GNORM_KEY, NFE_KEYS, REGULARISER_KEYS

SPLITS = ("train_inner", "train", "valid")


class PlotError(Exception):
    pass


def tensorboard_dir(run_dir):
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"{run_dir}: no such directory")
    for candidate in (RunDir(run_dir).tensorboard, run_dir):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    raise PlotError(f"{run_dir}: no TensorBoard logs (expected tb/ or train_inner/, train/, valid/ inside)")


def load_run(run_dir):
    """{split: {tag: [(update, wall_time, value), ...]}} read with TensorBoard's event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tensorboard_dir(run_dir)
    run = {}
    for split in SPLITS:
        if not (logs / split).is_dir():
            continue
        accumulator = EventAccumulator(str(logs / split), size_guidance={"scalars": 0})
        accumulator.Reload()
        run[split] = {tag: [(e.step, e.wall_time, e.value) for e in accumulator.Scalars(tag)]
                      for tag in accumulator.Tags()["scalars"]}
    if not any(run.values()):
        raise PlotError(f"{run_dir}: the TensorBoard logs hold no scalars yet")
    return run


def _running_min(points):
    best, out = float("inf"), []
    for step, wall, value in points:
        best = min(best, value)
        out.append((step, wall, best))
    return out


def _save(fig, out, name, formats):
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_runs(run_dirs, out, formats=("png", "svg")):
    """The figures of the runs in RUN_DIRS (their TensorBoard logs), each labelled by its directory name."""
    return plot_scalars({Path(d).resolve().name: load_run(d) for d in run_dirs}, out, formats)


def plot_scalars(runs, out, formats=("png", "svg")):
    """The figures of RUNS, {label: {split: {tag: [(update, seconds, value), ...]}}} as load_run reads them
    (seconds: wall-clock time, from any origin); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    # The default cycle has 10 colours; a whole study has more runs, and a repeated colour misnames a curve.
    palette = [f"C{i}" for i in range(10)] if len(runs) <= 10 else list(matplotlib.colormaps["tab20"].colors)
    colors = {name: palette[i % len(palette)] for i, name in enumerate(runs)}

    def series(run, split, tag):
        return run.get(split, {}).get(tag, [])

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, run in runs.items():
        for split, style in (("train_inner", "-"), ("valid", "--")):
            points = series(run, split, "loss")
            if points:
                ax.plot([p[0] for p in points], [p[2] for p in points], style, color=colors[name],
                        label=f"{name} ({'train' if split == 'train_inner' else 'valid'})")
    ax.set(xlabel="updates", ylabel="loss (base 2)", title="Training and validation loss")
    ax.legend(fontsize=8)
    written += _save(fig, out, "loss", formats)
    plt.close(fig)

    for axis, label in (("updates", "updates"), ("hours", "wall-clock hours")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, run in runs.items():
            best = _running_min(series(run, "valid", "loss"))
            if not best:
                continue
            if axis == "updates":
                xs = [p[0] for p in best]
            else:
                start = min(p[1] for split in run.values() for points in split.values() for p in points)
                xs = [(p[1] - start) / 3600 for p in best]
            ax.plot(xs, [p[2] for p in best], "-o", markersize=3, color=colors[name], label=name)
        ax.set(xlabel=label, ylabel="best validation loss (base 2)", title=f"Best validation loss vs {label}")
        ax.legend(fontsize=8)
        written += _save(fig, out, f"best_valid_loss_vs_{axis}", formats)
        plt.close(fig)

    def panels(keys, name, ylabel, title_of, suptitle, yscale="linear"):
        present = [k for k in keys if any(series(run, "train_inner", k) for run in runs.values())]
        if not present:
            return []
        fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 3.8), squeeze=False)
        for ax, key in zip(axes[0], present):
            for run_name, run in runs.items():
                points = series(run, "train_inner", key)
                if points:
                    ax.plot([p[0] for p in points], [p[2] for p in points], color=colors[run_name], label=run_name)
            ax.set(xlabel="updates", ylabel=ylabel, title=title_of(key), yscale=yscale)
        fig.suptitle(suptitle)
        fig.tight_layout()
        # One legend for the figure: a run may be missing from the first panel (a classic encoder has no
        # encoder NFE), and a legend per panel would crowd the curves.
        named = {}
        for ax in axes[0]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                named.setdefault(label, handle)
        fig.legend(list(named.values()), list(named), fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        paths = _save(fig, out, name, formats)
        plt.close(fig)
        return paths

    def side_of(key):
        return "encoder" if "_enc" in key else "decoder"

    written += panels(NFE_KEYS, "nfe", "NFE per solve",
                      lambda key: f"{side_of(key)}, {'forward' if key.endswith('fwd') else 'backward (adjoint)'}",
                      "Function evaluations of the ODE solver")
    written += panels(REGULARISER_KEYS, "regularisers", "integral per position",
                      lambda key: f"{side_of(key)}, {'kinetic' if 'kinetic' in key else 'Jacobian'}",
                      "RNODE regularisers (training solves)")
    # fairseq's gnorm is the norm before --clip-norm clips it; a log scale shows the spikes of an unstable run
    written += panels((GNORM_KEY,), "gnorm", "gradient norm (mean over the interval)", lambda key: "before clipping",
                      "Gradient norm", yscale="log")

    if any(series(run, "train_inner", BUDGET_SKIPS_KEY) for run in runs.values()):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for name, run in runs.items():
            points = series(run, "train_inner", BUDGET_SKIPS_KEY)
            if points:
                ax.bar([p[0] for p in points], [p[2] for p in points], color=colors[name], label=name)
        ax.set(xlabel="updates", ylabel="skipped batches", title="Batches over the step budget")
        ax.legend(fontsize=8)
        written += _save(fig, out, "budget_skips", formats)
        plt.close(fig)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, type=Path, help="directory for the figures")
    parser.add_argument("--formats", nargs="+", default=["png", "svg"], help="figure formats (default png svg)")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq leaves the root logger chatty
    try:
        written = plot_runs(args.runs, args.out, args.formats)
    except PlotError as error:
        print(f"plot: error: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
