"""Benchmarks: what a NODE block costs, against the classic Transformer and against plain torchdiffeq.

    python benchmarks/bench.py [--quick] [--only NAME ...] [--out benchmarks/results]

Each benchmark prints a table and writes it (Markdown) to OUT/NAME.md. Ratios are measured side by side in
one run; absolute times are context. --quick runs tiny sizes in seconds (the test suite uses it).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from odeint_ext import SolveStats, odeint_ext  # noqa: E402


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def table(name, title, header, rows, out, note=""):
    lines = [f"### {title}", "", f"Machine: {machine()}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    return rows


def timed(fn, repeats):
    """Median wall time of fn() over repeats (after one warm-up call) and fn's last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def block_function(width, heads, ffn):
    from node_transformer.modules import ODEFunction

    torch.manual_seed(0)
    return ODEFunction(width, heads, ffn, self_attention=True, cross_attention=True, encoder_dim=width).eval()


def block_inputs(width, length, batch):
    torch.manual_seed(1)
    h0 = torch.randn(length, batch, width, requires_grad=True)
    memory = torch.randn(length, batch, width, requires_grad=True)
    return h0, memory


def block_problem(size):
    """A decoder-like ODE function, its initial state, its extra arguments (causal mask, memory) and times."""
    width, heads, ffn, length, batch = size
    func = block_function(width, heads, ffn)
    h0, memory = block_inputs(width, length, batch)
    mask = torch.triu(torch.full((length, length), float("-inf")), 1)
    args = (None, mask, None, memory, None, None, None, None, None)
    return func, h0, memory, args, torch.tensor([0.0, 1.0])


# 1 -------------------------------------------------------------------------------------------------

def bench_overhead(size, repeats, out):
    """odeint_ext vs torchdiffeq's odeint_adjoint with the right adjoint_params, same function."""
    from torchdiffeq import odeint_adjoint
    from torch import nn

    width, _, _, length, batch = size
    func, h0, memory, args, t = block_problem(size)

    class Bound(nn.Module):
        def __init__(self):
            super().__init__()
            self.func, self.calls = func, 0

        def forward(self, t, y):
            self.calls += 1
            return self.func(t, y, *args)

    bound = Bound()

    def plain():
        bound.calls = 0
        y = odeint_adjoint(bound, h0, t, rtol=1e-3, atol=1e-3, method="dopri5",
                           adjoint_params=tuple(func.parameters()) + (memory,))
        y[-1].sum().backward()
        return bound.calls

    def extended():
        stats = SolveStats()
        y = odeint_ext(func, h0, t, args, rtol=1e-3, atol=1e-3, method="dopri5", stats=stats)
        y[-1].sum().backward()
        return stats.nfe_forward + stats.nfe_backward

    # Interleave the two so that machine noise hits both alike.
    plain_times, ext_times = [], []
    for _ in range(repeats):
        plain_times.append(timed(plain, 1)[0])
        ext_times.append(timed(extended, 1)[0])
    nfe_plain, nfe_ext = plain(), extended()
    tp, te = statistics.median(plain_times), statistics.median(ext_times)
    return table("overhead", "1. Solver layer overhead: odeint_ext vs torchdiffeq odeint_adjoint (forward + backward)",
                 ["state (T x B x C)", "torchdiffeq ms", "odeint_ext ms", "ratio", "NFE torchdiffeq", "NFE odeint_ext"],
                 [[f"{length}x{batch}x{width}", f"{tp * 1e3:.1f}", f"{te * 1e3:.1f}", f"{te / tp:.3f}", nfe_plain,
                   nfe_ext]], out, note="Target: ratio <= 1.03 and equal NFE.")


# 2 -------------------------------------------------------------------------------------------------

def bench_solver_share(size, repeats, out):
    """Share of a NODE block's forward+backward time spent outside function evaluations.

    The function's work is its evaluations times its standalone cost: one call of f (forward solve),
    one call of f plus its vector-Jacobian product (each adjoint evaluation, or each step replayed by
    backprop). The rest is the solver: step control, error norms, interpolation, bookkeeping."""
    func, h0, _, args, t = block_problem(size)
    state = h0.detach()

    def f_only():
        with torch.no_grad():
            func(t[0], state, *args)

    def f_and_vjp():
        y = state.clone().requires_grad_(True)
        out = func(t[0], y, *args)
        torch.autograd.grad(out, (y, *func.parameters()), torch.ones_like(out))

    cost_f = timed(f_only, 20 * repeats)[0]
    cost_fv = timed(f_and_vjp, 20 * repeats)[0]
    rows = []
    for adjoint in (True, False):
        stats = SolveStats()

        def run():
            stats.reset()
            start = time.perf_counter()
            y = odeint_ext(func, h0, t, args, rtol=1e-3, atol=1e-3, adjoint=adjoint, stats=stats)
            y[-1].sum().backward()
            return time.perf_counter() - start

        total = timed(run, repeats)[0]
        if adjoint:
            work = stats.nfe_forward * cost_f + stats.nfe_backward * cost_fv
        else:
            work = stats.nfe_forward * cost_fv  # f in the forward solve, its vjp in backprop's replay
        rows.append(["adjoint" if adjoint else "backprop", stats.nfe_forward, stats.nfe_backward,
                     f"{total * 1e3:.1f}", f"{work * 1e3:.1f}", f"{100 * max(total - work, 0) / total:.1f}%"])
    return table("solver_share", "2. Solver overhead inside a NODE block (decoder function, dopri5, tol 1e-3)",
                 ["gradient", "NFE fwd", "NFE bwd", "block fwd+bwd ms", "function work ms", "outside f"], rows,
                 out, note=f"f alone {cost_f * 1e3:.2f} ms, f + vjp {cost_fv * 1e3:.2f} ms. Target: <= 10% outside f.")


# 3-5 use a fairseq model built from command-line words -----------------------------------------------

def fairseq_model(data, *flags):
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import build

    return build(data, *flags)


def synthetic_data(root, quick):
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import preprocess, write_reverse_corpus

    if (root / "bin" / "dict.src.txt").exists():
        return root / "bin"
    n = 200 if quick else 2000
    text = write_reverse_corpus(root / "text", {"train": n, "valid": 20, "test": 40}, vocab=500, min_len=8,
                                max_len=20)
    return preprocess(text, root / "bin")


def training_batch(task, size):
    task.load_dataset("train")
    dataset = task.dataset("train")
    return dataset.collater([dataset[i] for i in range(size)])


def update_cost(data, flags, batch_size, repeats):
    """Seconds, NFE per solve and peak RSS of training updates, measured in a fresh process."""
    code = f"""
import json, resource, statistics, sys, time, torch
sys.path.insert(0, {str(REPO / 'tests')!r})
from helpers import build, nll
task, model, args = build({str(data)!r}, *{list(flags)!r})
task.load_dataset("train"); ds = task.dataset("train")
sample = ds.collater([ds[i] for i in range({batch_size})])
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
model.train(); times = []; nfe = {{}}
for step in range({repeats} + 1):
    for block in model.node_blocks().values(): block.stats.reset()
    torch.manual_seed(step); start = time.perf_counter()
    # As fairseq does: backward of the summed loss, gradients divided by the token count afterwards
    # (the adjoint's magnitude, and so its step control, depends on this).
    optimizer.zero_grad(); nll(model, sample).backward()
    for p in model.parameters(): p.grad.div_(sample["ntokens"])
    optimizer.step()
    if step: times.append(time.perf_counter() - start)
    for side, block in model.node_blocks().items():
        s = block.stats; nfe[side] = (s.nfe_forward / s.solves, s.nfe_backward / s.solves)
print(json.dumps({{"seconds": statistics.median(times), "nfe": nfe,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def config_flags(name):
    flags = []
    for line in (REPO / "configs" / f"{name}.args").read_text().splitlines():
        flags += line.split("#", 1)[0].split()
    return flags


def block_seminorm_rows(size, repeats):
    """Seminorm on the standalone decoder block function (random weights, full parameter adjoint)."""
    func, h0, _, args, t = block_problem(size)
    rows = []
    for tol in (1e-2, 1e-3):
        results = {}
        for seminorm in (False, True):
            stats = SolveStats()

            def run():
                stats.reset()
                y = odeint_ext(func, h0, t, args, rtol=tol, atol=tol,
                               adjoint_options={"norm": "seminorm"} if seminorm else None, stats=stats)
                y[-1].sum().backward()
                return stats.nfe_backward

            results[seminorm] = timed(run, repeats)
        (base_s, base_nfe), (semi_s, semi_nfe) = results[False], results[True]
        rows.append([f"block function, {tol:g}", base_nfe, semi_nfe, f"{semi_nfe / base_nfe:.2f}", f"{base_s:.3f}",
                     f"{semi_s:.3f}", f"{semi_s / base_s:.2f}"])
    return rows


def bench_seminorm(data, size, quick, repeats, out):
    rows = block_seminorm_rows(size, repeats)
    dims = ["--encoder-layers", "1", "--node-decoder"]
    for tol in ("1e-2", "1e-3"):
        results = {}
        for seminorm in (False, True):
            flags = [*dims, "--node-rtol", tol, "--node-atol", tol] + (["--node-adjoint-seminorm"] if seminorm else [])
            results[seminorm] = update_cost(data, flags, 16 if quick else 64, repeats)
        base, semi = results[False], results[True]
        rows.append([f"node_transformer_tiny decoder, {tol}", f"{base['nfe']['dec'][1]:.1f}", f"{semi['nfe']['dec'][1]:.1f}",
                     f"{semi['nfe']['dec'][1] / base['nfe']['dec'][1]:.2f}", f"{base['seconds']:.3f}",
                     f"{semi['seconds']:.3f}", f"{semi['seconds'] / base['seconds']:.2f}"])
    return table("seminorm", "3. Seminorm adjoint: backward NFE and time of one forward+backward",
                 ["solve, tolerance", "bwd NFE", "bwd NFE seminorm", "NFE ratio", "s/update", "s/update seminorm", "time ratio"],
                 rows, out, note="Target: backward NFE ratio <= 0.7.")


def bench_update_cost(data, quick, repeats, out):
    names = ["transformer_1layer", "node_full_tol1e-2", "node_separated_aug1"] if quick else [
        "transformer_1layer", "transformer_6layer", "transformer_tiny", "node_full_tol1e-3", "node_full_tol1e-2",
        "node_full_aug1", "node_decoder_aug1", "node_separated_aug1", "node_separated_aug1_timedep",
        "node_separated_aug1_weightdecay"]
    keep = {"--arch", "--share-all-embeddings", "--encoder-layers", "--decoder-layers", "--node-encoder",
            "--node-decoder", "--node-rtol", "--node-atol", "--node-augment-dims", "--node-separated-decoder",
            "--node-time-dependent", "--dropout"}
    batch = 16 if quick else 64
    rows, baseline = [], None
    for name in names:
        words, flags = config_flags(name), []
        for i, word in enumerate(words):
            if word in keep:
                flags.append(word)
                if i + 1 < len(words) and not words[i + 1].startswith("--"):
                    flags.append(words[i + 1])
        flags = [f for f in flags if f != "--share-all-embeddings"]
        modes = ["adjoint", "backprop"] if "--node-encoder" in flags or "--node-decoder" in flags else ["-"]
        for mode in modes:
            extra = [] if mode == "-" else ["--node-gradient", mode]
            r = update_cost(data, flags + extra, batch, repeats)
            baseline = baseline or r["seconds"]
            nfe = ", ".join(f"{side} {f:.0f}/{b:.0f}" for side, (f, b) in r["nfe"].items()) or "-"
            rows.append([name, mode, f"{r['seconds']:.3f}", f"{r['seconds'] / baseline:.1f}", nfe,
                         f"{r['peak_mb']:.0f}"])
    # Peak memory as NFE grows: tighter tolerances mean more steps; adjoint memory should stay flat.
    for tol in (["1e-2", "1e-4"] if quick else ["1e-2", "1e-4", "1e-6"]):
        for mode in ("adjoint", "backprop"):
            r = update_cost(data, ["--encoder-layers", "1", "--node-decoder", "--node-rtol", tol, "--node-atol", tol,
                                   "--node-gradient", mode], batch, 1)
            rows.append([f"node decoder, tol {tol}", mode, f"{r['seconds']:.3f}", f"{r['seconds'] / baseline:.1f}",
                         f"dec {r['nfe']['dec'][0]:.0f}/{r['nfe']['dec'][1]:.0f}", f"{r['peak_mb']:.0f}"])
    return table("update_cost", f"4. Cost of one training update (batch of {batch} synthetic sentences, "
                 "embed 128, FFN 256, 4 heads)",
                 ["experiment", "gradient", "s/update", "x transformer_1layer", "NFE per solve fwd/bwd",
                  "peak RSS MB"], rows, out,
                 note="Peak RSS is the whole process's (model, data, Python), each row in a fresh process.")


def bench_generation(data, quick, out):
    """Sentences per second of beam-5 search (fairseq's SequenceGenerator, as fairseq-generate uses it),
    random weights, every output forced to the same length so that both models do the same steps."""
    from fairseq.sequence_generator import SequenceGenerator

    rows, baseline = [], None
    length = 8 if quick else 20
    sentences = 8 if quick else 40
    for label, flags in [("transformer_1layer", ["--encoder-layers", "1", "--decoder-layers", "1"]),
                         ("node decoder (separated, aug 1)", ["--encoder-layers", "1", "--node-decoder",
                                                              "--node-separated-decoder", "--node-augment-dims", "1"]),
                         ("node decoder", ["--encoder-layers", "1", "--node-decoder"])]:
        task, model, _ = fairseq_model(data, *flags)
        model.eval()
        task.load_dataset("test")
        dataset = task.dataset("test")
        sample = dataset.collater([dataset[i] for i in range(sentences)])
        generator = SequenceGenerator([model], task.target_dictionary, beam_size=5, min_len=length,
                                      max_len_a=0, max_len_b=length)
        seconds, _ = timed(lambda: generator.generate([model], sample), 1)
        baseline = baseline or sentences / seconds
        rows.append([label, f"{sentences / seconds:.1f}", f"{(sentences / seconds) / baseline:.2f}"])
    return table("generation", f"5. Generation: beam 5, {sentences} sentences, {length} output tokens each",
                 ["model", "sentences/s", "x transformer_1layer"], rows, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds: check that every benchmark runs")
    parser.add_argument("--only", nargs="+", choices=["overhead", "solver_share", "seminorm", "update_cost",
                                                      "generation"])
    parser.add_argument("--out", type=Path, help="where the tables go (default benchmarks/results, "
                                                 "benchmarks/results/quick with --quick)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/node-transformer-bench"),
                        help="where the synthetic benchmark data is kept")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = REPO / "benchmarks" / "results" / ("quick" if args.quick else "")
    only = set(args.only or ["overhead", "solver_share", "seminorm", "update_cost", "generation"])
    size = (16, 2, 32, 6, 4) if args.quick else (128, 4, 256, 20, 64)  # width, heads, ffn, length, batch
    repeats = 1 if args.quick else 5
    import logging

    logging.disable(logging.WARNING)
    results = {}
    if "overhead" in only:
        results["overhead"] = bench_overhead(size, repeats, args.out)
    if "solver_share" in only:
        results["solver_share"] = bench_solver_share(size, repeats, args.out)
    if only & {"seminorm", "update_cost", "generation"}:
        data = synthetic_data(args.work / ("quick" if args.quick else "full"), args.quick)
        if "seminorm" in only:
            results["seminorm"] = bench_seminorm(data, size, args.quick, 1 if args.quick else 3, args.out)
        if "update_cost" in only:
            results["update_cost"] = bench_update_cost(data, args.quick, 1 if args.quick else 3, args.out)
        if "generation" in only:
            results["generation"] = bench_generation(data, args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
