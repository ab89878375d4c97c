"""Shared test helpers: tiny synthetic translation data, fairseq CLIs, models built through fairseq's options."""
import os
import random
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "node_transformer")
BIN = Path(sys.executable).parent
TINY_DIMS = [
    "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
    "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def write_reverse_corpus(directory, sizes, vocab=12, min_len=3, max_len=8, seed=0):
    """Parallel text where the target is the source reversed: splits {name: sentences}."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        with open(directory / f"{split}.src", "w") as src, open(directory / f"{split}.tgt", "w") as tgt:
            for _ in range(n):
                tokens = [rng.choice(words) for _ in range(rng.randint(min_len, max_len))]
                src.write(" ".join(tokens) + "\n")
                tgt.write(" ".join(reversed(tokens)) + "\n")
    return directory


def run_cli(name, *args, timeout=600, check=True):
    """Run a fairseq console script of this environment; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def preprocess(text_dir, dest):
    run_cli("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
            "--trainpref", Path(text_dir) / "train", "--validpref", Path(text_dir) / "valid",
            "--testpref", Path(text_dir) / "test", "--destdir", dest, "--joined-dictionary", "--workers", "1")
    return Path(dest)


def build(data_dir, *model_args, arch="node_transformer_tiny"):
    """(task, model, args) built the way fairseq-train builds them, from command-line words."""
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser, [str(data_dir), "--user-dir", USER_DIR, "--arch", arch, "--cpu", *map(str, model_args)]
    )
    task = tasks.setup_task(args)
    model = task.build_model(args)
    return task, model, args


def batch(task, split="train", size=6, seed=0):
    """A collated batch of the first ``size`` examples of a split."""
    task.load_dataset(split)
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in range(size)])


def nll(model, sample):
    """Summed token NLL, as fairseq's cross-entropy criterion computes it."""
    net_output = model(**sample["net_input"])
    lprobs = model.get_normalized_probs(net_output, log_probs=True)
    return torch.nn.functional.nll_loss(
        lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1),
        ignore_index=model.decoder.padding_idx, reduction="sum",
    )
