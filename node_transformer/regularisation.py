"""The RNODE regularisers' share of the training loss, and their metrics.

fairseq's criteria sum the loss over target tokens and the trainer divides the gradient by the sample
size (the number of target tokens). A block's regularisers are summed the same way, over its real
positions, and share that divisor: for the decoder ``--node-kinetic-reg`` is a weight per target position,
like the loss's weight per token; the encoder's sum runs over source positions, so there the weight
per source position is scaled by the batch's source/target length ratio (about 1 on Multi30k). A task
whose loss is a sum over a chosen few positions (the masked LM's: over the masked tokens, its sample size)
asks for ``per_position``: each integral is then scaled by sample size / real positions, so that after the
trainer's division the term is the weight times the integral per real position, as the metric shows. The metrics ``node_kinetic_{enc,dec}`` and
``node_jacobian_{enc,dec}`` are the integrals per real position, averaged over the logged updates.
"""
from fairseq import utils
from fairseq.logging import metrics

from . import nfe
from .modules.regularisers import KINDS


def with_regularisers(criterion, per_position=False):
    """``criterion(model, sample)`` with each NODE block's weighted regularisers added to the loss it
    returns (summed over real positions, or with ``per_position`` normalised as above); the logging output's
    own ``loss`` stays the criterion's, the integrals go in private fields."""

    def regularised(model, sample, **kwargs):
        loss, sample_size, logging_output = criterion(model, sample, **kwargs)
        for side, block in nfe.node_blocks(model).items():
            integrals = block.pop_integrals()
            if integrals is None:
                continue
            scale = sample_size / integrals.positions if per_position else 1
            for kind, total in integrals.totals.items():
                weight = block.settings.regulariser_weight(kind)
                if weight:
                    loss = loss + weight * scale * total
                logging_output[f"_node_{kind}_{side}"] = total.detach()
            logging_output[f"_node_positions_{side}"] = integrals.positions
        return loss, sample_size, logging_output

    return regularised


def log_metrics(logging_outputs):
    """node_{kinetic,jacobian}_{enc,dec}: integral per real position over the batches that computed it."""
    for side in nfe.SIDES:
        positions = utils.item(sum(log.get(f"_node_positions_{side}", 0) for log in logging_outputs))
        if not positions:
            continue
        for kind in KINDS:
            key = f"_node_{kind}_{side}"
            if any(key in log for log in logging_outputs):
                total = utils.item(sum(log.get(key, 0) for log in logging_outputs))
                metrics.log_scalar(key[1:], total / positions, weight=positions, round=3)
