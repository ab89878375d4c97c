"""The node_translation task: NFE in logs and TensorBoard, step budgets that skip or stop, resume,
--update-freq and two-process distributed training on CPU."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from helpers import BIN, REPO, USER_DIR, cli_env, run_cli, tiny_training_args

pytestmark = pytest.mark.slow  # fairseq subprocesses (the 'slow' marker: tests/conftest.py)

NODE = ["--node-encoder", "--node-decoder"]


def train_args(data, save_dir, *flags, updates=3):
    return tiny_training_args(data, save_dir, "--task", "node_translation", *flags, updates=updates)


def train(data, save_dir, *flags, updates=3, check=True):
    return run_cli("fairseq-train", *train_args(data, save_dir, *flags, updates=updates), check=check)


def log_lines(proc, kind):
    """Parsed `key value` pairs of every train_inner/train/valid line of a fairseq simple log."""
    pattern = {"train_inner": "| train_inner |", "train": "| train |", "valid": "| valid |"}[kind]
    rows = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if pattern in line:
            body = line.split(pattern, 1)[1]
            rows.append(dict(re.findall(r"([a-z_]+)[= ]([-\d.]+)", body)))
    return rows


def test_nfe_in_logs_and_tensorboard(reverse_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = train(reverse_data, tmp_path / "ckpt", *NODE, "--tensorboard-logdir", tmp_path / "tb")
    inner, epoch, valid = log_lines(proc, "train_inner"), log_lines(proc, "train"), log_lines(proc, "valid")
    assert len(inner) == 3 and epoch and valid
    for row in inner + epoch:
        for key in ("nfe_enc_fwd", "nfe_enc_bwd", "nfe_dec_fwd", "nfe_dec_bwd"):
            assert float(row[key]) > 0, (key, row)
    assert float(valid[0]["nfe_enc_fwd"]) > 0 and float(valid[0]["nfe_dec_fwd"]) > 0
    assert "nfe_enc_bwd" not in valid[0]

    def scalars(run):
        accumulator = EventAccumulator(str(tmp_path / "tb" / run))
        accumulator.Reload()
        return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}

    train_inner, train_epoch, valid_run = scalars("train_inner"), scalars("train"), scalars("valid")
    for run in (train_inner, train_epoch):
        for key in ("nfe_enc_fwd", "nfe_enc_bwd", "nfe_dec_fwd", "nfe_dec_bwd", "loss"):
            assert run[key] and all(v > 0 for v in run[key]), key
    assert len(train_inner["nfe_dec_fwd"]) == 3
    assert valid_run["nfe_enc_fwd"][0] > 0 and valid_run["nfe_dec_fwd"][0] > 0 and "nfe_dec_bwd" not in valid_run


@pytest.mark.parametrize("method", [[], ["--node-method", "rk4", "--node-step-size", "0.5"]], ids=["dopri5", "rk4"])
def test_regularisers_in_logs_and_tensorboard(reverse_data, tmp_path, method):
    """RNODE's integrals per position next to the NFE, training only; STEER on as well."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = train(reverse_data, tmp_path / "ckpt", *NODE, *method, "--node-kinetic-reg", "0.01",
                 "--node-jacobian-reg", "0.01", "--node-steer", "0.1", "--tensorboard-logdir", tmp_path / "tb")
    inner, valid = log_lines(proc, "train_inner"), log_lines(proc, "valid")
    assert len(inner) == 3
    keys = [f"node_{kind}_{side}" for kind in ("kinetic", "jacobian") for side in ("enc", "dec")]
    for row in inner:
        assert all(float(row[key]) > 0 for key in keys) and float(row["nfe_dec_fwd"]) > 0, row
    assert valid and not any(key in valid[0] for key in keys)
    accumulator = EventAccumulator(str(tmp_path / "tb" / "train_inner"))
    accumulator.Reload()
    assert all(len(accumulator.Scalars(key)) == 3 for key in keys)


def test_only_node_sides_are_reported(reverse_data, tmp_path):
    proc = train(reverse_data, tmp_path, "--node-decoder", "--encoder-layers", "1", updates=2)
    row = log_lines(proc, "train_inner")[-1]
    assert "nfe_dec_fwd" in row and "nfe_enc_fwd" not in row


def test_model_without_node_task_warns(reverse_data, tmp_path):
    args = train_args(reverse_data, tmp_path, "--node-decoder", updates=1)
    args[args.index("node_translation")] = "translation"
    proc = run_cli("fairseq-train", *args)
    assert "without --task node_translation" in proc.stdout + proc.stderr


def test_tiny_budget_skips_batches_and_training_goes_on(reverse_data, tmp_path):
    started = time.monotonic()
    proc = train(reverse_data, tmp_path, *NODE, "--node-max-num-steps", "1", "--node-max-consecutive-skips", "100",
                 updates=4)
    assert time.monotonic() - started < 300
    log = proc.stdout + proc.stderr
    assert "skipping batch at update 1: step budget max_num_steps=1 exceeded (encoder forward solve reached t=" in log
    skips = [float(row["node_budget_skips"]) for row in log_lines(proc, "train_inner")]
    assert len(skips) == 4 and all(s >= 1 for s in skips)
    assert (tmp_path / "checkpoint_last.pt").exists()


def test_budget_action_raise_stops_with_message_and_checkpoint(reverse_data, tmp_path):
    proc = train(reverse_data, tmp_path, *NODE, "--node-max-num-steps", "1", "--node-budget-action", "raise",
                 check=False)
    assert proc.returncode != 0
    assert "NODETrainingStopped" in proc.stderr and "--node-budget-action raise" in proc.stderr
    assert (tmp_path / "crash.pt").exists()


def test_consecutive_skips_stop_training(reverse_data, tmp_path):
    proc = train(reverse_data, tmp_path, *NODE, "--node-max-num-steps", "1", "--node-max-consecutive-skips", "3",
                 updates=10, check=False)
    assert proc.returncode != 0
    assert "3 consecutive batches exceeded the solver budget" in proc.stderr
    assert (tmp_path / "crash.pt").exists()


def test_consecutive_skips_count_across_a_resume(reverse_data, tmp_path):
    """Every batch is skipped: --node-max-consecutive-skips 3 stops at update 3, and a run cut after 2 updates
    and resumed must stop there too (fairseq hands a resumed task none of its saved state: counted afresh,
    it would stop at update 5)."""
    flags = [*NODE, "--node-max-num-steps", "1", "--node-max-consecutive-skips", "3",
             "--save-interval-updates", "1"]
    train(reverse_data, tmp_path, *flags, updates=2)
    resumed = train(reverse_data, tmp_path, *flags, updates=10, check=False)
    assert resumed.returncode != 0
    assert "resumed the solver-budget count: 2 batch(es) skipped, the last 2 in a row" in resumed.stdout + resumed.stderr
    assert "3 consecutive batches exceeded the solver budget, last at update 3:" in resumed.stderr


def test_bad_task_option_fails_before_training(reverse_data, tmp_path):
    proc = train(reverse_data, tmp_path, *NODE, "--node-max-consecutive-skips", "0", check=False)
    assert proc.returncode != 0 and "--node-max-consecutive-skips" in proc.stderr
    assert "begin training" not in proc.stdout + proc.stderr


def test_resume_keeps_counting(reverse_data, tmp_path):
    flags = [*NODE, "--dropout", "0", "--save-interval-updates", "2"]
    straight = train(reverse_data, tmp_path / "straight", *flags, updates=4)
    train(reverse_data, tmp_path / "resumed", *flags, updates=2)
    resumed = train(reverse_data, tmp_path / "resumed", *flags, updates=4)
    assert "Loaded checkpoint" in resumed.stdout + resumed.stderr
    after = log_lines(resumed, "train_inner")
    assert [row["num_updates"] for row in after] == ["3", "4"]
    reference = log_lines(straight, "train_inner")[2:]
    for key in ("nfe_enc_fwd", "nfe_enc_bwd", "nfe_dec_fwd", "nfe_dec_bwd"):
        assert [row[key] for row in after] == [row[key] for row in reference], key
    # The epoch average spans the updates before and after the restart.
    assert log_lines(resumed, "train")[-1]["nfe_dec_fwd"] == log_lines(straight, "train")[-1]["nfe_dec_fwd"]


def test_sigusr1_saves_between_intervals_and_the_run_resumes_exactly(reverse_data, tmp_path):
    """SIGUSR1 to a run that saves only every 100 updates: it saves checkpoint_last.pt after the update in
    progress and exits 75, validating nothing and writing no interval checkpoint; resumed, it logs what the
    run never stopped logs, update for update."""
    flags = [*NODE, "--validate-interval", "1000", "--save-interval", "1000", "--save-interval-updates", "100",
             "--validate-interval-updates", "100"]
    straight = train(reverse_data, tmp_path / "straight", *flags, updates=40)
    stopped_dir = tmp_path / "stopped"
    with subprocess.Popen([str(BIN / "fairseq-train"), *map(str, train_args(reverse_data, stopped_dir, *flags,
                                                                                updates=40))],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=cli_env()) as proc:
        output = []
        for line in proc.stdout:
            if "| train_inner |" in line and not any("| train_inner |" in seen for seen in output):
                proc.send_signal(signal.SIGUSR1)  # at its first logged update
            output.append(line)
        returncode = proc.wait(timeout=300)
    output = "".join(output)
    assert returncode == 75, output[-3000:]
    saved = re.search(r"SIGUSR1: saved checkpoint_last.pt at update (\d+); stopping \(exit 75\)", output)
    assert saved, output[-3000:]
    stopped_at = int(saved[1])
    assert 1 <= stopped_at < 40
    assert "| valid |" not in output and sorted(p.name for p in stopped_dir.glob("*.pt")) == ["checkpoint_last.pt"]

    resumed = train(reverse_data, stopped_dir, *flags, updates=40)
    assert f"@ {stopped_at} updates)" in resumed.stdout + resumed.stderr
    after = log_lines(resumed, "train_inner")
    reference = log_lines(straight, "train_inner")[stopped_at:]
    assert [row["num_updates"] for row in after] == [row["num_updates"] for row in reference]
    for key in ("loss", "nfe_enc_fwd", "nfe_enc_bwd", "nfe_dec_fwd", "nfe_dec_bwd", "gnorm", "lr"):
        assert [row[key] for row in after] == [row[key] for row in reference], key
    assert log_lines(resumed, "valid")[-1]["loss"] == log_lines(straight, "valid")[-1]["loss"]


def test_patience_counts_across_a_resume(reverse_data, tmp_path):
    """With lr 0 no validation improves on the first: --patience 3 stops after the 4th update, and a run cut
    after 2 updates and resumed must stop there too (fairseq alone would count again from the resume and
    stop after the 6th)."""
    flags = ["--lr", "0", "--dropout", "0", "--validate-interval-updates", "1", "--save-interval-updates", "1",
             "--keep-interval-updates", "1", "--patience", "3"]

    def stopped_at(proc):
        assert "early stop since valid performance hasn't improved for last 3 runs" in proc.stdout + proc.stderr
        return log_lines(proc, "valid")[-1]["num_updates"]

    straight = train(reverse_data, tmp_path / "straight", *flags, updates=12)
    assert stopped_at(straight) == "4"
    train(reverse_data, tmp_path / "resumed", *flags, updates=2)
    resumed = train(reverse_data, tmp_path / "resumed", *flags, updates=12)
    assert "resumed --patience: best valid loss" in resumed.stdout + resumed.stderr
    assert "1 validation(s) since without improvement" in resumed.stdout + resumed.stderr
    assert stopped_at(resumed) == "4"


def _records(prefix, rank):
    with open(f"{prefix}.rank{rank}") as f:
        return [json.loads(line) for line in f]


def _mean_per_update(records, key):
    totals, solves = defaultdict(int), defaultdict(int)
    for record in records:
        totals[record["update"]] += record["nfe"][f"_nfe_{key}"]
        solves[record["update"]] += record["nfe"][f"_nfe_{key.split('_')[0]}_solves"]
    return {update: totals[update] / solves[update] for update in totals}


def test_update_freq_counts_every_batch(reverse_data, tmp_path):
    prefix = tmp_path / "record"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "record_training.py"),
         *map(str, train_args(reverse_data, tmp_path / "ckpt", *NODE, "--update-freq", "2", updates=3))],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=dict(os.environ, NODE_RECORD=str(prefix)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = _records(prefix, 0)
    assert len(records) == 6  # two batches per update
    logged = log_lines(proc, "train_inner")
    for key in ("enc_fwd", "enc_bwd", "dec_fwd", "dec_bwd"):
        expected = _mean_per_update(records, key)
        assert [float(row[f"nfe_{key}"]) for row in logged] == [round(expected[u], 1) for u in sorted(expected)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_training(reverse_data, tmp_path):
    """gloo on CPU, one process per rank (fairseq 0.12's spawn and torchrun paths assume GPUs)."""
    prefix = tmp_path / "record"
    port = _free_port()
    procs = []
    for rank in (0, 1):
        args = train_args(reverse_data, tmp_path / "ckpt", *NODE, updates=3) + [
            "--distributed-backend", "gloo", "--distributed-world-size", "2", "--distributed-rank", str(rank),
            "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
            "--ddp-backend", "legacy_ddp",
        ]
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "record_training.py"), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=dict(os.environ, NODE_RECORD=str(prefix), OMP_NUM_THREADS="1"),
        ))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            outputs.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    assert all(o.returncode == 0 for o in outputs), outputs[0].stderr[-2000:] + outputs[1].stderr[-2000:]
    rank0, rank1 = _records(prefix, 0), _records(prefix, 1)
    assert [r["update"] for r in rank0] == [r["update"] for r in rank1] == [0, 1, 2]
    for a, b in zip(rank0, rank1):
        assert a["params"] == b["params"]  # the same model on both ranks before every update
    logged = log_lines(outputs[0], "train_inner")
    assert len(logged) == 3 and not log_lines(outputs[1], "train_inner")  # logged once, by rank 0
    for key in ("enc_fwd", "dec_bwd"):
        expected = _mean_per_update(rank0 + rank1, key)  # reduced over both ranks' batches
        assert [float(row[f"nfe_{key}"]) for row in logged] == [round(expected[u], 1) for u in sorted(expected)]


def test_generate_reports_nfe_per_sentence(reverse_data, tmp_path):
    train(reverse_data, tmp_path, *NODE, updates=2)
    proc = run_cli("fairseq-generate", reverse_data, "--user-dir", USER_DIR, "--task", "node_translation",
                   "--path", tmp_path / "checkpoint_last.pt", "--beam", "5", "--cpu", "--max-len-b", "12",
                   "--required-batch-size-multiple", "1")
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"NODE NFE per sentence \(20 sentences\): encoder ([\d.]+), decoder ([\d.]+) over "
                         r"([\d.]+) decoder solves \(one per generated token\)", last)
    assert match, last
    encoder, decoder, solves = map(float, match.groups())
    assert encoder >= 2 and decoder >= 2 * solves >= 2


def test_a_failed_translation_names_its_cause(reverse_data, tmp_path):
    """A study run's translation over the solver's budget fails with the error fairseq-generate ended on: the
    record keeps the cause, while the log stays behind with the run directory."""
    from node_experiments.run_dir import RunDir, TranslationError

    run = RunDir(tmp_path / "run")
    train(reverse_data, run.checkpoints, *NODE, updates=1)
    with pytest.raises(TranslationError) as failed:
        run.translate(reverse_data, "checkpoint_last.pt", subsets=("test",),
                      extra_flags=("--model-overrides", "{'node_max_num_steps': 1}"))
    assert str(failed.value).startswith(
        "translating test with checkpoint_last.pt failed: RuntimeError: generation stopped: step budget "
        "max_num_steps=1 exceeded (encoder forward solve reached t=")
    assert str(run.generate_log) in str(failed.value)
