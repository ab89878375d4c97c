"""Reading the NODE blocks' solver counters into fairseq logging outputs and metrics."""
from fairseq.logging import metrics

SIDES = {"enc": "encoder", "dec": "decoder"}


def unwrap(model):
    """The model inside fairseq's distributed/data-parallel wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model


def node_blocks(model):
    blocks = getattr(unwrap(model), "node_blocks", None)
    return blocks() if blocks is not None else {}


def reset(model):
    for block in node_blocks(model).values():
        block.stats.reset()


def collect(model, backward):
    """Private (underscore) logging-output fields with the NFE of the solves since the last reset."""
    out = {}
    for side, block in node_blocks(model).items():
        stats = block.stats
        out[f"_nfe_{side}_solves"] = stats.solves
        out[f"_nfe_{side}_fwd"] = stats.nfe_forward
        if backward and block.settings.adjoint:
            out[f"_nfe_{side}_bwd"] = stats.nfe_backward
    return out


def log_metrics(logging_outputs):
    """nfe_{enc,dec}_{fwd,bwd}: mean function evaluations of one solve (one per batch and side), over
    the batches of the update (micro-batches and workers) and, in the logs, over the logged updates."""
    for side in SIDES:
        solves = sum(log.get(f"_nfe_{side}_solves", 0) for log in logging_outputs)
        if not solves:
            continue
        for direction in ("fwd", "bwd"):
            key = f"_nfe_{side}_{direction}"
            if any(key in log for log in logging_outputs):
                total = sum(log.get(key, 0) for log in logging_outputs)
                metrics.log_scalar(key[1:], total / solves, weight=solves, round=1)
