"""A tiny NODE encoder + decoder learns to reverse sequences (teacher-forced accuracy on held-out data)."""
import time

import pytest
import torch

from helpers import build, nll, preprocess, write_reverse_corpus

pytestmark = pytest.mark.slow  # trains a model for a minute (the 'slow' marker: tests/conftest.py)


def test_node_transformer_learns_to_reverse(tmp_path):
    torch.manual_seed(0)
    text = write_reverse_corpus(tmp_path / "text", {"train": 4000, "valid": 200, "test": 10}, vocab=10, max_len=6)
    data = preprocess(text, tmp_path / "bin")
    dims = ["--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
            "--decoder-ffn-embed-dim", "128", "--dropout", "0", "--share-all-embeddings"]
    task, model, _ = build(data, "--node-encoder", "--node-decoder", *dims)
    task.load_dataset("train")
    task.load_dataset("valid")
    train, valid = task.dataset("train"), task.dataset("valid")
    held_out = valid.collater([valid[i] for i in range(len(valid))])

    steps = 350
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(0)
    started = time.monotonic()
    losses = []
    model.train()
    for _ in range(steps):
        sample = train.collater([train[i] for i in torch.randint(len(train), (64,), generator=generator).tolist()])
        loss = nll(model, sample) / sample["ntokens"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    seconds = time.monotonic() - started

    model.eval()
    with torch.no_grad():
        predictions = model(**held_out["net_input"])[0].argmax(-1)
    real = held_out["target"].ne(task.target_dictionary.pad())
    accuracy = ((predictions == held_out["target"]) & real).sum().item() / real.sum().item()
    print(f"{steps} updates in {seconds:.0f} s, held-out token accuracy {accuracy:.3f}")
    assert sum(losses[-20:]) < 0.2 * sum(losses[:20])
    assert accuracy >= 0.95
