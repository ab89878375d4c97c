"""Reading the NODE blocks' solver counters into fairseq logging outputs and metrics, and the NFE line
that generation prints (written by the node_translation task, read back by scripts/score.py)."""
import re

from fairseq.logging import metrics

SIDES = {"enc": "encoder", "dec": "decoder"}
GENERATION_NFE_LINE = re.compile(
    r"NODE NFE per sentence \((?P<sentences>\d+) sentences\): "
    r"(?P<sides>encoder [\d.]+(?:, decoder [\d.]+)?|decoder [\d.]+)"
    r"(?: over (?P<decoder_solves>[\d.]+) decoder solves \(one per generated token\))?"
)


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


def format_generation_nfe(sentences, per_sentence, decoder_solves):
    """The line generation prints: mean NFE per sentence of each side in ``per_sentence`` ({"encoder": x,
    "decoder": y}, either may be absent) and, with a decoder, its mean solves per sentence. One decimal:
    ``format_generation_nfe(**parse_generation_nfe(line)) == line`` for every line this formats."""
    sides = ", ".join(f"{side} {per_sentence[side]:.1f}" for side in SIDES.values() if side in per_sentence)
    solves = f" over {decoder_solves:.1f} decoder solves (one per generated token)" if "decoder" in per_sentence else ""
    return f"NODE NFE per sentence ({sentences} sentences): {sides}{solves}"


def parse_generation_nfe(line):
    """format_generation_nfe's arguments back from its line (numbers as floats, decoder_solves None without a
    decoder), or None when ``line`` is not such a line."""
    match = GENERATION_NFE_LINE.fullmatch(line)
    if match is None:
        return None
    per_sentence = {side: float(value) for side, value in re.findall(r"(encoder|decoder) ([\d.]+)", match["sides"])}
    solves = match["decoder_solves"]
    return {"sentences": int(match["sentences"]), "per_sentence": per_sentence,
            "decoder_solves": float(solves) if solves is not None else None}
