"""fairseq-train, recording what each rank's node_translation.train_step saw (for the trainer tests).

    NODE_RECORD=PREFIX python record_training.py <fairseq-train arguments>

appends one JSON line per batch to PREFIX.rank<R>: the update number, the batch's private NFE fields
and the sum of the model's parameters before the update's optimizer step.
"""
import json
import os
import sys

import torch
import torch.distributed as dist
from fairseq_cli.train import cli_main  # first: it sets up fairseq's log format

import node_transformer  # noqa: F401  (registers the task before fairseq parses --user-dir)
from node_transformer.tasks.node_translation import NODETranslationTask

_train_step = NODETranslationTask.train_step


def recording_train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
    result = _train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    with torch.no_grad():
        params = sum(p.double().sum().item() for p in model.parameters())
    record = {"update": update_num, "nfe": {k: v for k, v in result[2].items() if k.startswith("_nfe")},
              "params": params}
    with open(f"{os.environ['NODE_RECORD']}.rank{rank}", "a") as f:
        f.write(json.dumps(record) + "\n")
    return result


NODETranslationTask.train_step = recording_train_step

if __name__ == "__main__":
    sys.argv = ["fairseq-train", *sys.argv[1:]]
    cli_main()
