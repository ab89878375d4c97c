"""Time training updates of one synthetic-task model in this process, which is fresh, so that its peak RSS
is this model's alone. The benchmarks run it once per row.

    python benchmarks/update_worker.py --data DIR --batch-size 16 --repeats 3 -- --encoder-layers 1 --node-decoder

Prints one JSON line: {"seconds": median s/update, "nfe": {side: [fwd, bwd] NFE per solve}, "peak_mb": peak RSS}.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch

from node_experiments.synthetic import build, first_batch, summed_nll


def measure_updates(data, flags, batch_size, repeats):
    """Median seconds and NFE per solve of ``repeats`` Adam updates on one batch (after a warm-up update)."""
    task, model, _ = build(data, *flags)
    sample = first_batch(task, "train", batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times, nfe = [], {}
    for step in range(repeats + 1):
        for block in model.node_blocks().values():
            block.stats.reset()
        torch.manual_seed(step)
        start = time.perf_counter()
        # As fairseq does: backward of the summed loss, gradients divided by the token count afterwards
        # (the adjoint's magnitude, and so its step control, depends on this).
        optimizer.zero_grad()
        summed_nll(model, sample).backward()
        for p in model.parameters():
            p.grad.div_(sample["ntokens"])
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
        for side, block in model.node_blocks().items():
            nfe[side] = (block.stats.nfe_forward / block.stats.solves, block.stats.nfe_backward / block.stats.solves)
    return {"seconds": statistics.median(times), "nfe": nfe,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="binarised synthetic data (fairseq-preprocess output)")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True, help="timed updates, after one warm-up update")
    parser.add_argument("flags", nargs="*", help="the model's fairseq flags, after --")
    args = parser.parse_args(argv)
    print(json.dumps(measure_updates(args.data, args.flags, args.batch_size, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
