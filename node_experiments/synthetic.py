"""A synthetic translation task for tests, benchmarks and quick checks: the target is the source reversed.

    text = write_reverse_corpus("work/text", {"train": 400, "valid": 40, "test": 20})
    data = preprocess(text, "work/bin")
    task, model, args = build(data, "--node-decoder", "--encoder-layers", "1")
"""
import os
import random
import subprocess
import sys
from pathlib import Path

import torch

USER_DIR = str(Path(__file__).resolve().parents[1] / "node_transformer")  # the plugin, as fairseq-train --user-dir


def write_reverse_corpus(directory, sizes, vocab=12, min_len=3, max_len=8, seed=0):
    """Parallel text (``SPLIT.src``/``SPLIT.tgt``) where the target is the source reversed:
    ``sizes`` maps a split name to its number of sentences."""
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


def preprocess(text_dir, dest):
    """Binarise a corpus of train/valid/test splits with fairseq-preprocess and a joined dictionary."""
    text_dir = Path(text_dir)
    command = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", "src", "--target-lang", "tgt",
               "--trainpref", text_dir / "train", "--validpref", text_dir / "valid", "--testpref", text_dir / "test",
               "--destdir", dest, "--joined-dictionary", "--workers", "1"]
    proc = subprocess.run([str(word) for word in command], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if proc.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
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


def first_batch(task, split="train", size=6):
    """A collated batch of the first ``size`` examples of a split."""
    task.load_dataset(split)
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in range(size)])


def summed_nll(model, sample):
    """Summed token NLL, as fairseq's cross-entropy criterion computes it."""
    net_output = model(**sample["net_input"])
    lprobs = model.get_normalized_probs(net_output, log_probs=True)
    return torch.nn.functional.nll_loss(
        lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1),
        ignore_index=model.decoder.padding_idx, reduction="sum",
    )
