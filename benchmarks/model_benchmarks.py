"""Benchmarks of whole fairseq models (node_transformer_tiny) on the synthetic reverse-the-sequence task
(or Multi30k where prepared): the seminorm adjoint in training, the cost of a training update per experiment,
beam-search generation, the gradient modes, and trainings side by side on the machine's cores."""
import json
import os
import subprocess
import sys
from pathlib import Path

from fairseq.sequence_generator import SequenceGenerator

from node_experiments.experiment_config import read_flag_groups
from node_experiments.synthetic import build, first_batch, preprocess, write_reverse_corpus
from node_experiments.report import Table, timed
from solver_benchmarks import SEMINORM_HEADER, block_seminorm_rows, seminorm_row

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
UPDATE_WORKER = Path(__file__).resolve().with_name("update_worker.py")
# The config flags that shape the model and its solves; data, optimiser and logging flags stay out.
MODEL_FLAGS = {"--arch", "--encoder-layers", "--decoder-layers", "--node-encoder", "--node-decoder", "--node-rtol",
               "--node-atol", "--node-augment-dims", "--node-separated-decoder", "--node-time-dependent", "--dropout"}
QUICK_EXPERIMENTS = ["transformer_1layer", "node_full_tol1e-2", "node_separated_aug1"]
FULL_EXPERIMENTS = ["transformer_1layer", "transformer_6layer", "transformer_tiny", "node_full_tol1e-3",
                    "node_full_tol1e-2", "node_full_aug1", "node_decoder_aug1", "node_separated_aug1",
                    "node_separated_aug1_timedep", "node_separated_aug1_weightdecay", "node_fast_rk4",
                    "node_fast_separated_midpoint", "node_fast_separated_euler"]
NODE_DECODER = ["--encoder-layers", "1", "--node-decoder"]


def synthetic_data(root, quick):
    """Binarised reverse-the-sequence data under ROOT/bin, made once and reused."""
    if (root / "bin" / "dict.src.txt").exists():
        return root / "bin"
    n = 200 if quick else 2000
    text = write_reverse_corpus(root / "text", {"train": n, "valid": 20, "test": 40}, vocab=500, min_len=8,
                                max_len=20)
    return preprocess(text, root / "bin")


def start_update_worker(data, flags, batch_size, repeats, threads=None):
    """A fresh process timing training updates (update_worker.py), on THREADS threads (torch's default,
    one per core, if None); its result comes from worker_result."""
    command = [sys.executable, str(UPDATE_WORKER), "--data", str(data), "--batch-size", str(batch_size),
               "--repeats", str(repeats), "--", *flags]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def worker_result(proc):
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(stderr[-3000:])
    return json.loads(stdout.strip().splitlines()[-1])


def update_cost(data, flags, batch_size, repeats, threads=None):
    """Seconds, NFE per solve and peak RSS of training updates, measured in a fresh process."""
    return worker_result(start_update_worker(data, flags, batch_size, repeats, threads))


def experiment_model_flags(name, leave_out=()):
    """configs/NAME.args reduced to its MODEL_FLAGS and --node-* flags, as {flag: value words}."""
    groups = read_flag_groups(CONFIGS / f"{name}.args")
    return {flag: values for flag, values in groups.items()
            if (flag in MODEL_FLAGS or flag.startswith("--node-")) and flag not in leave_out}


def words(groups):
    return [word for flag, values in groups.items() for word in (flag, *values)]


def seminorm(data, size, quick, repeats):
    """3. Backward NFE and time with and without the seminorm, on the block function and a model's decoder."""
    rows = block_seminorm_rows(size, repeats)
    for tol in ("1e-2", "1e-3"):
        nfe, seconds = {}, {}
        for semi in (False, True):
            flags = [*NODE_DECODER, "--node-rtol", tol, "--node-atol", tol]
            flags += ["--node-adjoint-seminorm"] if semi else []
            result = update_cost(data, flags, 16 if quick else 64, repeats)
            nfe[semi], seconds[semi] = result["nfe"]["dec"][1], result["seconds"]
        rows.append(seminorm_row(f"node_transformer_tiny decoder, {tol}", nfe, seconds, nfe_format="{:.1f}"))
    return Table("seminorm", "3. Seminorm adjoint: backward NFE and time of one forward+backward", SEMINORM_HEADER,
                 rows, note="Target: backward NFE ratio <= 0.7.")


def update_costs(data, quick, repeats):
    """4. Seconds, NFE and peak RSS of one training update for each experiment config, and as tolerance tightens."""
    batch = 16 if quick else 64
    rows, baseline = [], None
    for name in QUICK_EXPERIMENTS if quick else FULL_EXPERIMENTS:
        groups = experiment_model_flags(name)
        flags = words(groups)
        modes = ["adjoint", "backprop"] if groups.keys() & {"--node-encoder", "--node-decoder"} else ["-"]
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
            r = update_cost(data, [*NODE_DECODER, "--node-rtol", tol, "--node-atol", tol, "--node-gradient", mode],
                            batch, 1)
            rows.append([f"node decoder, tol {tol}", mode, f"{r['seconds']:.3f}", f"{r['seconds'] / baseline:.1f}",
                         f"dec {r['nfe']['dec'][0]:.0f}/{r['nfe']['dec'][1]:.0f}", f"{r['peak_mb']:.0f}"])
    return Table("update_cost", f"4. Cost of one training update (batch of {batch} synthetic sentences, "
                 "embed 128, FFN 256, 4 heads)",
                 ["experiment", "gradient", "s/update", "x transformer_1layer", "NFE per solve fwd/bwd",
                  "peak RSS MB"], rows,
                 note="Peak RSS is the whole process's (model, data, Python), each row in a fresh process.")


def generation(data, quick):
    """5. Sentences per second of beam-5 search (fairseq's SequenceGenerator, as fairseq-generate uses it),
    random weights, every output forced to the same length so that both models do the same steps."""
    rows, baseline = [], None
    length = 8 if quick else 20
    sentences = 8 if quick else 40
    rk4 = [*NODE_DECODER, "--node-method", "rk4", "--node-step-size", "1.0"]
    for label, flags, incremental in [
        ("transformer_1layer", ["--encoder-layers", "1", "--decoder-layers", "1"], True),
        ("node decoder (separated, aug 1), dopri5: full prefix", [*NODE_DECODER, "--node-separated-decoder",
                                                                  "--node-augment-dims", "1"], False),
        ("node decoder, dopri5: full prefix", NODE_DECODER, False),
        ("node decoder, rk4 one step: full prefix", rk4, False),
        ("node decoder, rk4 one step: incremental", rk4, True),
    ]:
        task, model, _ = build(data, *flags)
        model.eval()
        if model.node_blocks():
            model.decoder.incremental = incremental
        sample = first_batch(task, "test", sentences)
        generator = SequenceGenerator([model], task.target_dictionary, beam_size=5, min_len=length,
                                      max_len_a=0, max_len_b=length)
        seconds, _ = timed(lambda: generator.generate([model], sample), 1)
        baseline = baseline or sentences / seconds
        rows.append([label, f"{sentences / seconds:.1f}", f"{(sentences / seconds) / baseline:.2f}"])
    return Table("generation", f"5. Generation: beam 5, {sentences} sentences, {length} output tokens each",
                 ["model", "sentences/s", "x transformer_1layer"], rows)


GRADIENT_MODES = {
    "adjoint": ["--node-gradient", "adjoint"],
    "adjoint + seminorm": ["--node-gradient", "adjoint", "--node-adjoint-seminorm"],
    "backprop": ["--node-gradient", "backprop"],
}
QUICK_GRADIENT_EXPERIMENTS = ["demo", "node_fast_rk4"]
FULL_GRADIENT_EXPERIMENTS = ["demo", "node_fast_rk4", "node_fast_separated_midpoint", "node_fast_separated_euler"]


def gradient_modes(data, on_multi30k, quick, repeats):
    """6. Seconds per update and peak RSS of each way through the solver, for the NODE configs, on real
    Multi30k batches where they are prepared."""
    batch = 16 if quick else 128
    rows = []
    for name in QUICK_GRADIENT_EXPERIMENTS if quick else FULL_GRADIENT_EXPERIMENTS:
        flags = words(experiment_model_flags(name, leave_out={"--node-gradient", "--node-adjoint-seminorm"}))
        for mode, mode_flags in GRADIENT_MODES.items():
            r = update_cost(data, flags + mode_flags, batch, repeats)
            nfe = ", ".join(f"{side} {f:.0f}/{b:.0f}" for side, (f, b) in r["nfe"].items())
            rows.append([name, mode, f"{r['seconds']:.3f}", nfe, f"{r['peak_mb']:.0f}"])
    where = "Multi30k training sentences" if on_multi30k else "synthetic sentences"
    return Table("gradient_modes", f"6. Gradients through the solver: one training update, the first {batch} {where}",
                 ["config", "gradient", "s/update", "NFE per solve fwd/bwd", "peak RSS MB"], rows,
                 note="Each row in a fresh process; the config's own --node-gradient is replaced by the row's.")


SIDE_BY_SIDE_EXPERIMENTS = ["transformer_1layer", "node_separated_aug1"]


def side_by_side(data, on_multi30k, quick, repeats):
    """7. Why the study trains one run at a time: one training on all cores against one per core at once,
    in updates per second of the whole machine (NODE configs with backprop, the study's gradient)."""
    batch = 16 if quick else 128
    cores = os.cpu_count()
    rows = []
    for name in SIDE_BY_SIDE_EXPERIMENTS:
        groups = experiment_model_flags(name, leave_out={"--node-gradient", "--node-adjoint-seminorm"})
        flags = words(groups) + (GRADIENT_MODES["backprop"] if "--node-decoder" in groups else [])
        alone = update_cost(data, flags, batch, repeats)["seconds"]
        one_thread = update_cost(data, flags, batch, repeats, threads=1)["seconds"]
        workers = [start_update_worker(data, flags, batch, repeats, threads=1) for _ in range(cores)]
        together = [worker_result(worker)["seconds"] for worker in workers]
        rate_together = sum(1 / seconds for seconds in together)
        rows.append([name, f"{alone:.3f}", f"{one_thread:.3f}", f"{max(together):.3f}",
                     f"{rate_together * alone:.2f}"])
    where = "Multi30k training sentences" if on_multi30k else "synthetic sentences"
    return Table("side_by_side", f"7. One training on all {cores} cores, or {cores} at once on one thread each: "
                 f"updates of the first {batch} {where}",
                 ["config", "s/update, alone on all cores", "s/update, alone on 1 thread",
                  f"s/update, {cores} at once on 1 thread each (slowest)", "updates/s of the machine, x alone"],
                 rows, note="Each row's processes are fresh; the last column is the summed updates per second of "
                            "the processes at once over that of one training alone on all cores.")
