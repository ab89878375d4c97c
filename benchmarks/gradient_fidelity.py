"""Gradient fidelity: how close each way through the solver comes to the ODE's gradient, on trained models.

    python benchmarks/gradient_fidelity.py CHECKPOINT... [--batches 0 3] [--data DIR] [--out benchmarks/results]

The gradient tests prove every mode at tight tolerances on small models. A run trains at its own, loose
tolerance, and its model changes as it learns: this measures, on a run's checkpoints, the gradient of the
training loss of a few Multi30k training batches (the same batches, dropout masks and loss for every row) by
- the run's own solve: its tolerance and gradient mode (the study's schedule: backprop; the full NODE's
  runs chose the adjoint),
- backprop and the adjoint (with and without the seminorm) at the run's tolerance, each but the run's own,
- backprop at a tenth of the run's tolerance,
- the reference's gradient at tolerance 1e-5, its check,
against the reference, the ODE's gradient to float32's precision: backprop at tolerance 1e-6, or where that
solve goes over --backprop-max-steps (a stiff model's, whose recorded graph would outgrow the
memory), the adjoint at 1e-6 (constant memory); any other backprop solve over them is reported as
such. Side by side (the encoder's parameters, the decoder's): the norm over the reference's,
and the cosine to it. A cosine near 1 is the ODE's gradient; one near 0 is another function's. Writes
OUT/gradient_fidelity.md and .json.
"""
import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "gradient_fidelity"
REFERENCE_TOLERANCE, CHECK_TOLERANCE = 1e-6, 1e-5


class StepBudgets(NamedTuple):
    """Steps per solve (the encoder's and the decoder's each). A trained model can be stiff enough that a solve
    takes hundreds of steps, whose recorded graph outgrows the memory (24 GB here, at 4096 tokens: backprop's
    reference at node_full_tol1e-2's update 1000; backprop at 1e-2 at node_full_tol1e-2_adjoint's update 800,
    72-73 encoder and 5-6 decoder steps; 11 + 52 fitted): every backprop solve stops at BACKPROP steps. The
    adjoint, which records none, takes over the reference, up to ADJOINT_REFERENCE steps (a batch over both has
    no reference)."""
    backprop: int = 60
    adjoint_reference: int = 2000


SIDES = {"enc": "encoder.", "dec": "decoder."}  # node_blocks' side: the prefix of that side's parameters
BATCH_SEED, BATCH_EPOCH, MAX_TOKENS = 7, 3, 4096  # which shuffled batches "batch N" means: the study's size


class GradientMode(NamedTuple):
    name: str
    changes: Callable  # NodeSettings of the run -> the fields this mode replaces


BACKPROP = {"adjoint": False, "seminorm": False}  # the NodeSettings fields of backprop through the solve
ADJOINT = {"adjoint": True, "seminorm": False}


class Reference(NamedTuple):
    mode: GradientMode
    check: GradientMode  # the same gradient at a tenth of the precision: two that agree are converged


def _reference(gradient_fields, words, max_num_steps):
    """The reference and its check by GRADIENT_FIELDS, whatever the run's own gradient mode."""
    def at(tol):
        return lambda settings: {"rtol": tol, "atol": tol, "max_num_steps": max_num_steps, **gradient_fields}
    return Reference(GradientMode(f"{words}, tol {REFERENCE_TOLERANCE:g} (reference)", at(REFERENCE_TOLERANCE)),
                     GradientMode(f"{words}, tol {CHECK_TOLERANCE:g} (reference check)", at(CHECK_TOLERANCE)))


def references(budgets: StepBudgets) -> List[Reference]:
    """In the order tried."""
    return [_reference(BACKPROP, "backprop", budgets.backprop),
            _reference(ADJOINT, "adjoint", budgets.adjoint_reference)]


OWN = GradientMode("the run's own", lambda settings: {})
MODES = [  # after the run's own, each of these that solves as the run does is left out (the same row again)
    OWN,
    GradientMode("backprop", lambda settings: BACKPROP),
    GradientMode("backprop, tol / 10", lambda settings: {"rtol": settings.rtol / 10, "atol": settings.atol / 10,
                                                         **BACKPROP}),
    GradientMode("adjoint", lambda settings: ADJOINT),
    GradientMode("adjoint + seminorm", lambda settings: {"adjoint": True, "seminorm": True}),
]


class Gradient(NamedTuple):
    loss: float  # per target token, as fairseq normalises a batch's gradient
    by_side: Dict[str, "torch.Tensor"]  # noqa: F821  {side: its parameters' gradients, flattened}
    nfe_forward: Dict[str, float]  # {side: forward NFE of its solve}
    seconds: float


def step_budget(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a step budget is at least 1, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT")
    parser.add_argument("--batches", nargs="+", type=int, default=[0, 3],
                        help="which training batches (shuffled as fairseq shuffles its epoch 3 with seed 7)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the binarised data the runs trained on (default: the one each checkpoint names)")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--backprop-max-steps", type=step_budget, default=StepBudgets().backprop,
                        help="the steps a backprop solve may record (its graph's memory grows with them); beyond, "
                             "the adjoint takes over the reference and other backprop rows say so")
    parser.add_argument("--adjoint-reference-max-steps", type=step_budget, default=StepBudgets().adjoint_reference,
                        help="the steps the adjoint's reference may take where it takes over (it records none)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def load(checkpoint: Path, data):
    """(model in training mode, its ODE blocks by side, task, criterion) of a fairseq checkpoint."""
    from fairseq import checkpoint_utils, utils

    from node_experiments.synthetic import USER_DIR

    utils.import_user_module(argparse.Namespace(user_dir=USER_DIR))
    from node_transformer.nfe import node_blocks

    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint}: no such checkpoint")
    overrides = {"data": str(data)} if data else {}
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides=overrides)
    model = models[0].train()
    blocks = node_blocks(model)
    if not blocks:
        raise SystemExit(f"{checkpoint}: a classic model, no ODE block: every gradient mode is the same")
    return model, blocks, task, task.build_criterion(cfg.criterion)


def training_batches(task, indices, max_tokens):
    """{index: batch} of the training batches named."""
    task.load_dataset("train")
    iterator = task.get_batch_iterator(dataset=task.dataset("train"), max_tokens=max_tokens, seed=BATCH_SEED,
                                       epoch=BATCH_EPOCH, required_batch_size_multiple=1)
    batches = {}
    for index, sample in enumerate(iterator.next_epoch_itr(shuffle=True)):
        if index in indices:
            batches[index] = sample
        if len(batches) == len(indices):
            return batches
    raise SystemExit(f"--batches: the training data has {index + 1} batches of {max_tokens} tokens")


def gradient(model, blocks, criterion, sample, settings) -> Optional[Gradient]:
    """The training loss's gradient with every ODE block solving with SETTINGS, the same dropout masks each call;
    None where a solve went over its step budget."""
    import torch

    from odeint_ext import StepBudgetExceeded

    for block in blocks.values():
        block.settings = settings
        block.stats.reset()
    torch.manual_seed(0)
    model.zero_grad()
    start = time.perf_counter()
    try:
        loss, sample_size, _ = criterion(model, sample)
        loss.backward()
    except StepBudgetExceeded:
        model.zero_grad()
        return None
    seconds = time.perf_counter() - start
    by_side = {side: torch.cat([p.grad.flatten() for name, p in model.named_parameters()
                                if p.grad is not None and name.startswith(prefix)]) / sample_size
               for side, prefix in SIDES.items()}
    nfe = {side: float(block.stats.nfe_forward) / max(block.stats.solves, 1) for side, block in blocks.items()}
    return Gradient(float(loss.detach()) / sample_size, by_side, nfe, seconds)


def compare(g: Gradient, reference: Gradient) -> Dict[str, Dict[str, float]]:
    """{side: {"norm_ratio", "cosine"}} of G against the reference."""
    import torch

    out = {}
    for side, ref in reference.by_side.items():
        mine, ref = g.by_side[side].double(), ref.double()  # float32 sums over a million entries round past 1
        out[side] = {"norm_ratio": float(mine.norm() / ref.norm()),
                     "cosine": float(torch.dot(mine, ref) / (mine.norm() * ref.norm()))}
    return out


def measure(checkpoint: Path, batches: List[int], data=None, max_tokens=MAX_TOKENS,
            budgets=StepBudgets()) -> List[dict]:
    """One row per batch and gradient mode (the reference's and its check's included)."""
    from node_experiments.carry import checkpoint_updates

    model, blocks, task, criterion = load(checkpoint, data)
    run = next(iter(blocks.values())).settings
    updates = checkpoint_updates(checkpoint)

    def settings_of(mode):
        return dataclasses.replace(run, **mode.changes(run))

    def within_memory(settings):
        if settings.adjoint:
            return settings
        return dataclasses.replace(settings, max_num_steps=min(settings.max_num_steps, budgets.backprop))

    tried_in_order = references(budgets)
    rows = []
    for index, sample in training_batches(task, set(batches), max_tokens).items():
        row = {"checkpoint": str(checkpoint), "updates": updates, "batch": index}
        for reference in tried_in_order:
            reference_gradient = gradient(model, blocks, criterion, sample, settings_of(reference.mode))
            if reference_gradient is not None:
                break
        else:  # nothing to compare with: one row says why
            tried = [settings_of(r.mode) for r in tried_in_order]
            each = ", ".join(f"{_mode_words(settings)} {settings.max_num_steps} steps" for settings in tried)
            rows.append(dict(row, mode=reference.mode.name, tolerance=tried[-1].rtol,
                             gradient=_mode_words(tried[-1]),
                             over_budget=f"the reference went over its step budget ({each})"))
            continue
        for mode in [reference.mode, *MODES, reference.check]:
            settings = settings_of(mode)
            if mode is not OWN and settings == run:
                continue
            held = within_memory(settings)
            mode_row = dict(row, mode=mode.name, tolerance=held.rtol, gradient=_mode_words(held))
            g = reference_gradient if mode is reference.mode else gradient(model, blocks, criterion, sample, held)
            if g is None:
                rows.append(dict(mode_row, over_budget=f"over its step budget ({held.max_num_steps} steps)"))
                continue
            rows.append(dict(mode_row, loss=g.loss, nfe_forward=g.nfe_forward, seconds=g.seconds,
                             sides=compare(g, reference_gradient)))
    return rows


def _mode_words(settings):
    return "adjoint + seminorm" if settings.seminorm else "adjoint" if settings.adjoint else "backprop"


def _ratio(value):
    return f"{value:.2f}x" if value < 1000 else f"{value:.1e}x"  # backprop through a stiff solve can explode


def table(rows):
    from node_experiments.report import Table

    body = []
    for r in rows:
        run = f"{Path(r['checkpoint']).parent.parent.name} @ {r['updates']}"
        solve = f"{r['gradient']}, tol {r['tolerance']:g}"
        if "over_budget" in r:
            body.append([run, r["batch"], r["mode"], solve, "-", "-", r["over_budget"], "-"])
            continue
        sides = "; ".join(f"{side} {_ratio(v['norm_ratio'])}, cos {v['cosine']:.3f}" for side, v in r["sides"].items())
        nfe = ", ".join(f"{side} {n:.0f}" for side, n in r["nfe_forward"].items())
        body.append([run, r["batch"], r["mode"], solve, f"{r['loss']:.4f}", nfe, sides, f"{r['seconds']:.1f}"])
    return Table(NAME, "Gradient fidelity: each way through the solver against the ODE's gradient, on trained runs",
                 ["run @ update", "batch", "mode", "gradient, tolerance", "loss per token", "forward NFE per solve",
                  "gradient (norm over the reference's; cosine to it)", "s fwd+bwd"], body,
                 note="The reference is backprop at tolerance 1e-6, or the adjoint there where backprop's solve "
                      "goes over its step budget (the same batch, dropout masks and weights); a cosine near 1 is "
                      "the ODE's gradient where the reference agrees with its check. Seconds are one forward and "
                      "backward, with nothing else running.")


def main(argv=None):
    args = parse_args(argv)
    from node_experiments.report import publish

    rows = []
    for checkpoint in args.checkpoints:  # written after each checkpoint: a long measurement keeps what it has
        rows += measure(checkpoint, args.batches, args.data, args.max_tokens,
                        StepBudgets(args.backprop_max_steps, args.adjoint_reference_max_steps))
        publish(table(rows), args.out)
        (args.out / f"{NAME}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
