"""The 2019 study's conclusions, each checked against the converged study's records, and this project's
target for the layer function (``--node-function layer``).

Every row states the 2019 claim, the experiments that test it, the rule that decides it and the numbers
the records give; its verdict is "reproduced", "refuted" or "not testable yet" (an experiment it needs has
no record). The rules are fixed here, before the numbers: a validation-loss difference of at most ``LEVEL``
(base 2) counts as level, an NFE change of more than ``NFE_CHANGE`` of its start as a rise or a fall, a cost
ratio above ``SLOWER`` as much slower. Runs compared at equal updates are compared at the update the row
names; a run that ended before that update, on its plateau (fairseq's --patience) or by its solves' step
budget (it cannot train on), stands at its best validation loss (``standing_at``), which the evidence says.
Costs per update are in transformer_1layer updates on the same machine (``cost``), so that runs trained on
different machines compare. Plain Python over ``StudyRecord``s: the table rebuilds from the records on a fresh
clone.
"""
from dataclasses import dataclass
from statistics import mean
from typing import Dict, List, Optional

from .study_record import TEST_SETS, StudyRecord
from .training_log import GNORM_KEY

LEVEL = 0.05  # validation loss (base 2): closer than this is level
NFE_CHANGE = 0.10  # a change of more than 10% of the first logged NFE is a rise (or a fall)
SLOWER = 1.5  # "much slower": more than 1.5x the cost per update, or the time to the plateau
TRANSLATES = 20.0  # tokenized BLEU on test2016 at which a model translates
WINDOW = 250  # updates: NFE "at update U" is the mean of the intervals logged in (U - WINDOW, U]
EQUAL_UPDATES = 3000  # where the "against their base run" experiments are compared
CAPPED_UPDATES = 1000  # where the capped full-NODE variants are compared (scripts/study.py's CONVERGED_PLAN caps them)

REPRODUCED, REFUTED, NOT_TESTABLE = "reproduced", "refuted", "not testable yet"
YARDSTICK = "transformer_1layer"  # the unit of cost per update (node_experiments/yardstick.py)
# The layer-function NODE decoder trained to its plateau: the best config of the equal-time measurements
# (benchmarks/results/layer_function/), against the classic 1+1 and 4+4.
LAYER_EXPERIMENT = "node_layer_euler_t2"
# The demo's run: on the one schedule the demo's flags are this config's (the schedule replaces the rest),
# so the plan does not train the demo again, and demo_kinetic is compared with this run.
DEMO_RUN = "node_separated_aug1"

# node_full_tol1e-2 with --clip-norm 1.0, the one schedule flag it changes: is the full NODE's failure on the
# schedule (gradient-norm spikes in the warmup, stopped on its plateau at update 1600) its optimiser's?
CLIPPED_EXPERIMENT = "node_full_tol1e-2_clip"
# The full NODE (adaptive encoder + decoder) trained with the adjoint, whose gradient stayed the ODE's longer
# than backprop's through the solve at 1e-2 (benchmarks/results/gradient_fidelity.md): what the full NODE's
# NFE, tolerance, augmentation and gradient-bug rows read. Each of those rows says how far that holds.
FULL_NODE = "node_full_tol1e-2_adjoint"
# Its ablation with the 2019 gradient bug (--node-detach-encoder: the encoder learns nothing through the decoder).
FULL_NODE_2019BUG = "node_full_tol1e-2_adjoint_2019bug"
FULL_NODE_GRADIENT = (
    "the full-NODE runs train with the adjoint, the ODE's gradient while the encoder stays non-stiff and not after "
    "(node_full_tol1e-2_adjoint: cosine 0.99 at update 600, 0.16-0.37 on the encoder at 800 once its solve took "
    "264 evaluations; node_full_aug1_adjoint, whose encoder stayed at 14-20: 0.996-1.000 at 600, 800 and 1000; "
    "node_full_tol1e-3_adjoint, whose encoder stayed at 20-26: 0.951-0.996 at 600, 800 and 1000; "
    "benchmarks/results/gradient_fidelity_256_tokens)")

# The comparisons of the converged study: figures/SECTION/*.png of the experiments named (those with records).
SECTIONS: Dict[str, List[str]] = {
    "depth": ["transformer_1layer", "transformer_tiny", "transformer_6layer"],
    "node_vs_1layer": ["transformer_1layer", "node_separated_aug1", "node_full_tol1e-2", "node_fast_separated_euler"],
    "nfe": ["node_separated_aug1", "node_full_tol1e-2", FULL_NODE, "node_decoder_aug1", "node_full_aug1_adjoint"],
    "gradient_bug": ["node_separated_aug1", "node_separated_aug1_2019bug", FULL_NODE, FULL_NODE_2019BUG],
    "tolerance": [FULL_NODE, "node_full_tol1e-3_adjoint"],
    "augmentation": [FULL_NODE, "node_full_aug1_adjoint", "node_decoder_aug1"],
    "separated_decoder": ["node_decoder_aug1", "node_separated_aug1"],
    "time_dependence": ["node_separated_aug1", "node_separated_aug1_timedep"],
    "weight_decay": ["node_separated_aug1", "node_separated_aug1_weightdecay"],
    "fixed_grid": ["transformer_1layer", "node_fast_separated_euler", "node_separated_aug1"],
    "regularisers": [DEMO_RUN, "demo_kinetic"],
    "layer_function": ["transformer_1layer", "transformer_1layer_prenorm_dec", LAYER_EXPERIMENT, "transformer_tiny"],
    "stability": ["node_full_tol1e-2", CLIPPED_EXPERIMENT, FULL_NODE, "node_decoder_aug1"],
}


@dataclass
class Conclusion:
    number: str  # the study's numbering (0-10, "tol")
    claim: str  # the 2019 conclusion (or this project's claim, where the row says so)
    experiments: List[str]  # the records it needs
    rule: str  # what decides it, stated before the numbers
    verdict: str = NOT_TESTABLE
    evidence: str = ""  # the numbers that decided it
    caveat: str = ""  # what the numbers rest on and a reader must know (shown after the evidence)
    figure: str = ""  # the figure (under the converged figures) that shows it
    # Decided run by run (or pair by pair: each experiment against its base): the runs whose records exist
    # show their numbers while the others still train; the verdict waits for all unless those decide it.
    by_runs: bool = False
    partial: bool = False  # some runs' numbers are in, not all: the evidence and the figure show them


def loss_at(record: StudyRecord, update: int) -> Optional[float]:
    updates, losses = record.valid.column("loss")
    return dict(zip(updates, losses)).get(update)


def nfe_at(record: StudyRecord, key: str, update: Optional[int] = None) -> Optional[float]:
    """The mean NFE per solve of KEY over the intervals logged in (update - WINDOW, update], by default up
    to the run's last logged update."""
    updates, values = record.train.column(key)
    if not updates:
        return None
    end = update if update is not None else updates[-1]
    window = [v for u, v in zip(updates, values) if end - WINDOW < u <= end]
    return mean(window) if window else None


def nfe_first(record: StudyRecord, key: str) -> Optional[float]:
    _, values = record.train.column(key)
    return values[0] if values else None


def change(first, last):
    return (last - first) / first if first else 0.0


def bleu(record: StudyRecord) -> Optional[float]:
    score = record.translation.get(TEST_SETS[0])
    return score["tokenized_bleu"] if score else None


def _bleu_text(record):
    score = bleu(record)
    return f"BLEU {score:.2f}" if score is not None else "not translated"


def cost(records, name) -> Optional[float]:
    """NAME's seconds per update in yardstick updates (transformer_1layer's, on the same machine): a cost that
    compares across machines. From its record's measured yardsticks or, for a record made before the
    yardstick, against transformer_1layer's record made before it too: the study's first machine trained
    both, and that run's own clean seconds per update is its yardstick. None where neither holds."""
    record, unit = records[name], records.get(YARDSTICK)
    if record.cost_in_yardstick_updates is not None:
        return record.cost_in_yardstick_updates
    if record.sessions or unit is None or unit.sessions or not unit.seconds_per_update:
        return None
    return record.seconds_per_update / unit.seconds_per_update


def _costs(records, c, names) -> Optional[Dict[str, float]]:
    """{name: cost} of NAMES, or None with the conclusion's evidence saying which is unknown."""
    costs = {name: cost(records, name) for name in names}
    unknown = [name for name, value in costs.items() if value is None]
    if unknown:
        c.evidence = (f"the cost per update of {', '.join(unknown)} is not known on a common scale "
                      "(a session without a yardstick)")
        return None
    return costs


def stopped_before(record: StudyRecord, update: int) -> bool:
    """Whether the run ended before UPDATE, with no validation there: on its plateau (fairseq's --patience), or
    by its solves' step budget."""
    ended = record.status == "plateau" or record.stopped_by_solver_budget
    return loss_at(record, update) is None and ended and record.updates < update


def standing_at(record: StudyRecord, update: int) -> Optional[float]:
    """The run's validation loss at UPDATE; for a run that ended before UPDATE, its best (on its plateau
    fairseq's --patience found no better one after it; stopped by its solver's budget, it cannot train on);
    else None."""
    return record.best_valid_loss if stopped_before(record, update) else loss_at(record, update)


def _how_it_stood(record: StudyRecord, update: int) -> str:
    """Why a run that ended before UPDATE stands at its best there, for the evidence."""
    if record.status == "plateau":
        return f"its best: on its plateau since update {record.best_at_update}, stopped at {record.updates}"
    return f"its best, at update {record.best_at_update}: its solves' step budget stopped it before update {update}"


def _compare_at(records, name, base, update):
    """Evidence and the loss difference (name - base) at UPDATE, or None when a run has not reached it."""
    here, there = standing_at(records[name], update), standing_at(records[base], update)
    if here is None or there is None:
        return None, f"{name if here is None else base} has no validation at update {update}"

    def shown(run, loss):
        r = records[run]
        return f"{run} {loss:.3f}" + (f" ({_how_it_stood(r, update)})" if stopped_before(r, update) else "")

    return here - there, f"valid loss at update {update}: {shown(name, here)}, {shown(base, there)}"


def _learns(records, c):
    names = [n for n in c.experiments if n in records]
    scores = {n: bleu(records[n]) for n in names}
    c.evidence = "; ".join(f"{n}: best valid loss {records[n].best_valid_loss:.3f}, {_bleu_text(records[n])}"
                           for n in names)
    c.verdict = REPRODUCED if any(s is not None and s >= TRANSLATES for s in scores.values()) else REFUTED


def _behind_1layer(records, c):
    node = min(c.experiments[1:], key=lambda n: records[n].best_valid_loss)
    classic = records["transformer_1layer"]
    gap = records[node].best_valid_loss - classic.best_valid_loss
    c.evidence = (f"best NODE run {node}: {records[node].best_valid_loss:.3f} ({_bleu_text(records[node])}); "
                  f"transformer_1layer: {classic.best_valid_loss:.3f} ({_bleu_text(classic)}); gap {gap:+.3f}")
    c.verdict = REPRODUCED if gap > LEVEL else REFUTED


def _slower(records, c):
    costs = _costs(records, c, c.experiments)
    if costs is None:
        return
    classic = "transformer_1layer"
    parts, slower = [], []
    for name in c.experiments[1:]:
        per_update = costs[name] / costs[classic]
        # hours to the best on one machine: updates to the best times the cost of one
        hours = records[name].best_at_update * costs[name]
        classic_hours = records[classic].best_at_update * costs[classic]
        parts.append(f"{name}: {per_update:.1f}x per update, {hours / classic_hours:.1f}x the time to its best")
        slower.append(per_update > SLOWER or hours > SLOWER * classic_hours)
    c.evidence = "; ".join(parts) + " (costs in transformer_1layer updates on the same machine)"
    c.verdict = REPRODUCED if all(slower) else REFUTED


def _nfe_rises(records, c):
    parts, rises = [], []
    for name in c.experiments:
        first, last = nfe_first(records[name], "nfe_dec_fwd"), nfe_at(records[name], "nfe_dec_fwd")
        parts.append(f"{name}: decoder {first:.1f} → {last:.1f} ({change(first, last):+.0%})")
        rises.append(change(first, last) > NFE_CHANGE)
    c.evidence = "; ".join(parts)
    c.verdict = REPRODUCED if all(rises) else REFUTED


def _nfe_sides(record: StudyRecord) -> Dict[str, tuple]:
    """{side: (first, last)} forward NFE per solve of the run's NODE sides ("enc", "dec")."""
    sides = {side: (nfe_first(record, f"nfe_{side}_fwd"), nfe_at(record, f"nfe_{side}_fwd")) for side in ("enc", "dec")}
    return {side: ends for side, ends in sides.items() if None not in ends}


def _nfe_sides_text(record: StudyRecord, sides: Dict[str, tuple]) -> str:
    return f"{record.experiment}: " + ", ".join(f"{side} {a:.1f} → {b:.1f} ({change(a, b):+.0%})"
                                                for side, (a, b) in sides.items())


def _decoder_not_encoder(records, c):
    r = records[c.experiments[0]]
    sides = _nfe_sides(r)
    c.evidence = _nfe_sides_text(r, sides)
    # the bug's share, shown beside the verdict it does not decide: the 2019 pattern may be the bug's
    if (bugged := records.get(FULL_NODE_2019BUG)) is not None:
        c.evidence += f"; with the 2019 gradient bug, {_nfe_sides_text(bugged, _nfe_sides(bugged))}"
    decoder_rises = change(*sides["dec"]) > NFE_CHANGE
    encoder_flat = abs(change(*sides["enc"])) <= NFE_CHANGE
    c.verdict = REPRODUCED if decoder_rises and encoder_flat else REFUTED


def _gradient_text(record: StudyRecord) -> str:
    """Whether the run's encoder learns through the NODE decoder, or not (the 2019 bug, --node-detach-encoder)."""
    return "with the 2019 gradient bug" if "--node-detach-encoder" in record.flags else "correct gradient"


def _refines_forever(records, c):
    runs = [records[name] for name in c.experiments if name in records]
    missing = [name for name in c.experiments if name not in records]
    # a stop's reason is long (the solve's error and advice after the first "; "): its first clause says enough
    c.evidence = "; ".join(
        [f"{r.experiment} ({_gradient_text(r)}): {len(r.budget_skips)} batches over the step budget in {r.updates} "
         f"updates" + (f", {r.status.split('; ')[0]}" if r.stopped else "") for r in runs]
        + ([f"no record of {', '.join(missing)} yet"] if missing else []))
    # a run stopped by its solves' budget (NODETrainingStopped), not by a NaN or a crash
    if any(r.budget_skips or r.stopped_by_solver_budget for r in runs):
        c.verdict = REPRODUCED  # one run that went over decides it, whatever the others do
    elif missing:
        c.partial = bool(runs)
    else:
        c.verdict = REFUTED


def _cost_ratio(records, c, name, base) -> Optional[float]:
    """NAME's cost per update over BASE's, or None with the evidence saying which is unknown."""
    costs = _costs(records, c, [name, base])
    return costs[name] / costs[base] if costs else None


def _separated_cheaper(records, c):
    separated, full = c.experiments
    if (ratio := _cost_ratio(records, c, separated, full)) is None:
        return
    difference, evidence = _compare_at(records, separated, full, EQUAL_UPDATES)
    c.evidence = f"{ratio:.2f}x the cost per update; {evidence}"
    if difference is not None:
        c.verdict = REPRODUCED if ratio < 1 / 1.1 and difference <= LEVEL else REFUTED


def _no_help(update):
    def decide(records, c):
        variant, base = c.experiments
        difference, c.evidence = _compare_at(records, variant, base, update)
        if difference is not None:
            c.verdict = REPRODUCED if difference >= -LEVEL else REFUTED
    return decide


def _weight_decay(records, c):
    decayed, base = c.experiments
    difference, evidence = _compare_at(records, decayed, base, EQUAL_UPDATES)
    nfe = {n: nfe_at(records[n], "nfe_dec_fwd", EQUAL_UPDATES) for n in (decayed, base)}
    c.evidence = f"{evidence}; decoder NFE there: {nfe[decayed]:.1f} against {nfe[base]:.1f}"
    if difference is not None:
        lowers = change(nfe[base], nfe[decayed]) < -NFE_CHANGE
        c.verdict = REPRODUCED if lowers and difference > LEVEL else REFUTED


def _tolerance(records, c):
    loose, tight = c.experiments
    if (ratio := _cost_ratio(records, c, tight, loose)) is None:
        return
    difference, evidence = _compare_at(records, loose, tight, CAPPED_UPDATES)
    c.evidence = f"{tight} costs {ratio:.1f}x per update; {evidence}"
    if difference is not None:
        c.verdict = REPRODUCED if ratio > 1 and difference > LEVEL else REFUTED


def _bug_share(records, c):
    compared = []  # (difference or None, evidence) of each ablation against its base
    for bugged, base in zip(c.experiments[::2], c.experiments[1::2]):
        if (why := _why_undecided(records, [bugged, base])) is not None:
            compared.append((None, why))
            continue
        difference, evidence = _compare_at(records, bugged, base, EQUAL_UPDATES)
        compared.append((difference, evidence + (f" ({difference:+.3f})" if difference is not None else "")))
    c.evidence = "; ".join(evidence for _, evidence in compared)
    # the claim checked is "the bug costs quality": reproduced when every ablation is behind its base
    differences = [difference for difference, _ in compared]
    if all(d is not None for d in differences):
        c.verdict = REPRODUCED if all(d > LEVEL for d in differences) else REFUTED
    else:
        c.partial = any(d is not None for d in differences)


def _kinetic_lowers_the_rise(records, c):
    regularised, base = c.experiments
    difference, evidence = _compare_at(records, regularised, base, EQUAL_UPDATES)
    first = nfe_first(records[base], "nfe_dec_fwd")
    nfe = {n: nfe_at(records[n], "nfe_dec_fwd", EQUAL_UPDATES) for n in (regularised, base)}
    if None in nfe.values():
        c.evidence = f"no decoder NFE logged up to update {EQUAL_UPDATES} yet"
        return
    c.evidence = (f"{base}'s decoder NFE {first:.1f} → {nfe[base]:.1f} ({change(first, nfe[base]):+.0%}) by update "
                  f"{EQUAL_UPDATES}, {regularised}'s {nfe[regularised]:.1f} there; {evidence}")
    if difference is not None:
        rises = change(first, nfe[base]) > NFE_CHANGE
        lowers = change(nfe[base], nfe[regularised]) < -NFE_CHANGE
        c.verdict = REPRODUCED if rises and lowers and difference <= LEVEL else REFUTED


def largest_gnorm(record: StudyRecord) -> Optional[float]:
    """The largest gradient norm (before clipping) of the run's logged intervals, None where none was logged."""
    _, values = record.train.column(GNORM_KEY)
    return max(values) if values else None


def _clipping_rescues(records, c):
    clipped, base = c.experiments
    difference, evidence = _compare_at(records, clipped, base, EQUAL_UPDATES)
    spikes = {name: largest_gnorm(records[name]) for name in (clipped, base)}
    c.evidence = evidence + "".join(f"; largest gradient norm of {name} {value:.1f}" for name, value in spikes.items()
                                    if value is not None)
    stalled = stopped_before(records[clipped], EQUAL_UPDATES)
    if stalled:  # it ended before too: clipping delayed the failure at most
        r = records[clipped]
        how = f"on its plateau at update {r.updates}" if r.status == "plateau" else "by its solves' step budget"
        c.evidence += f"; {clipped} stopped {how} as well"
    if difference is not None:
        c.verdict = REPRODUCED if difference < -LEVEL and not stalled else REFUTED


def _layer_reaches_1layer(records, c):
    layer, one, tiny = (records[n] for n in c.experiments)
    gap, gap_tiny = layer.best_valid_loss - one.best_valid_loss, layer.best_valid_loss - tiny.best_valid_loss
    c.evidence = (f"{layer.experiment}: best valid loss {layer.best_valid_loss:.3f} at update {layer.best_at_update} "
                  f"({_bleu_text(layer)}); transformer_1layer {one.best_valid_loss:.3f} ({gap:+.3f}); "
                  f"transformer_tiny {tiny.best_valid_loss:.3f} ({gap_tiny:+.3f})")
    c.verdict = REPRODUCED if gap <= 0 else REFUTED


CHECKS: List[tuple] = [
    (Conclusion("0", "The NODE-Transformer learns to translate",
                ["node_separated_aug1", "node_full_tol1e-2"],
                f"reproduced if a NODE run's final model reaches {TRANSLATES:g} tokenized BLEU on test2016",
                figure="node_vs_1layer/best_valid_loss_vs_updates.png"), _learns),
    (Conclusion("1", "It stays behind the 1-layer Transformer (2019: 4.5 against 3.19 valid loss)",
                ["transformer_1layer", "node_separated_aug1", "node_full_tol1e-2", "node_fast_separated_euler"],
                f"reproduced if the best NODE run's best valid loss is more than {LEVEL} above the 1-layer's",
                figure="node_vs_1layer/best_valid_loss_vs_updates.png"), _behind_1layer),
    (Conclusion("2", "It trains much slower",
                ["transformer_1layer", "node_separated_aug1", "node_full_tol1e-2"],
                f"reproduced if each adaptive NODE run costs more than {SLOWER}x the 1-layer per update, or takes "
                "more than that to its best validation loss (updates x cost per update; costs in transformer_1layer "
                "updates on the same machine: records of several machines compare)",
                figure="node_vs_1layer/best_valid_loss_vs_hours.png"), _slower),
    (Conclusion("3", "Its NFE rises while it learns",
                ["node_separated_aug1", "node_full_tol1e-2"],
                f"reproduced if each adaptive run's decoder forward NFE ends (mean of its last {WINDOW} updates) more "
                f"than {NFE_CHANGE:.0%} above its first logged value",
                figure="nfe/nfe.png"), _nfe_rises),
    (Conclusion("4", "The decoder's NFE rises, the encoder's stays flat",
                [FULL_NODE],
                f"reproduced if the decoder's forward NFE rises by more than {NFE_CHANGE:.0%} and the encoder's changes "
                f"by at most {NFE_CHANGE:.0%}", figure="nfe/nfe.png"), _decoder_not_encoder),
    (Conclusion("6", "A solve can refine forever (the augmented NODE decoder hung)",
                ["node_decoder_aug1", FULL_NODE_2019BUG],
                "reproduced if a batch of either run went over the solver's step budget (skipped and counted, or "
                "training stopped); each run's gradient is named: the bug's share",
                figure="gradient_bug/nfe.png", by_runs=True), _refines_forever),
    (Conclusion("7", "The separated decoder costs less at no loss of quality",
                ["node_separated_aug1", "node_decoder_aug1"],
                f"reproduced if it costs less than 1/1.1 of the full NODE decoder per update and its valid loss at "
                f"update {EQUAL_UPDATES} is at most {LEVEL} above", figure="separated_decoder/best_valid_loss_vs_updates.png"),
     _separated_cheaper),
    (Conclusion("8", "Augmentation does not help", ["node_full_aug1_adjoint", FULL_NODE],
                f"reproduced if the augmented run is not more than {LEVEL} below at update {CAPPED_UPDATES}",
                figure="augmentation/best_valid_loss_vs_updates.png"), _no_help(CAPPED_UPDATES)),
    (Conclusion("9", "Time dependence does not help", ["node_separated_aug1_timedep", "node_separated_aug1"],
                f"reproduced if the time-dependent run is not more than {LEVEL} below at update {EQUAL_UPDATES}",
                figure="time_dependence/best_valid_loss_vs_updates.png"), _no_help(EQUAL_UPDATES)),
    (Conclusion("10", "Weight decay lowers NFE and costs quality",
                ["node_separated_aug1_weightdecay", "node_separated_aug1"],
                f"reproduced if at update {EQUAL_UPDATES} its decoder NFE is more than {NFE_CHANGE:.0%} lower and its "
                f"valid loss more than {LEVEL} higher", figure="weight_decay/nfe.png"), _weight_decay),
    (Conclusion("tol", "Tolerance 1e-2 trains faster and ends worse than 1e-3",
                [FULL_NODE, "node_full_tol1e-3_adjoint"],
                f"reproduced if 1e-3 costs more per update and 1e-2 is more than {LEVEL} behind at update "
                f"{CAPPED_UPDATES} (1e-3 is capped there: its end is not reached)",
                figure="tolerance/best_valid_loss_vs_updates.png"), _tolerance),
    (Conclusion("bug", "The 2019 gradient bug's share: the encoder got no gradient through the NODE decoder",
                ["node_separated_aug1_2019bug", "node_separated_aug1", FULL_NODE_2019BUG, FULL_NODE],
                f"reproduced (the bug cost quality) if each ablation is more than {LEVEL} behind its base at update "
                f"{EQUAL_UPDATES}", figure="gradient_bug/best_valid_loss_vs_updates.png", by_runs=True), _bug_share),
    (Conclusion("kinetic", "This project's question, not a 2019 claim: the demo's decoder NFE rises over thousands "
                           "of updates, and the kinetic regulariser keeps it lower at no loss of quality",
                ["demo_kinetic", DEMO_RUN],
                f"the demo on the one schedule is {DEMO_RUN} (the same flags): reproduced if its decoder forward "
                f"NFE rises by more than {NFE_CHANGE:.0%} by update {EQUAL_UPDATES} and demo_kinetic's is more than "
                f"{NFE_CHANGE:.0%} below it there, its valid loss at most {LEVEL} above",
                figure="regularisers/nfe.png"), _kinetic_lowers_the_rise),
    (Conclusion("clip", "This project's question, not a 2019 claim: the full NODE's failure on the one schedule "
                        "is its optimiser's (gradient clipping lets it learn)",
                [CLIPPED_EXPERIMENT, "node_full_tol1e-2"],
                f"reproduced if {CLIPPED_EXPERIMENT} trains to update {EQUAL_UPDATES} (it does not stop on its "
                f"plateau before) and its valid loss there is more than {LEVEL} below node_full_tol1e-2's (which "
                "stopped on its plateau before it: its best)",
                figure="stability/loss.png"), _clipping_rescues),
    (Conclusion("layer", "This project's target, not a 2019 claim: a layer-function NODE decoder with one layer's "
                         "parameters reaches the classic 1+1",
                [LAYER_EXPERIMENT, "transformer_1layer", "transformer_tiny"],
                "reproduced if its best valid loss at its plateau is at or below transformer_1layer's (the gap to the "
                "4+4 transformer_tiny is shown)", figure="layer_function/best_valid_loss_vs_updates.png"),
     _layer_reaches_1layer),
]


def _numbers_missing(records, names):
    """Why the records of NAMES cannot decide a row (a run stopped before it logged a validation, an NFE or
    its speed), or None."""
    for name in names:
        r = records[name]
        if r.best_valid_loss is None or not r.seconds_per_update:
            return f"{name} logged no validation or speed yet"
        node = any(flag in r.flags for flag in ("--node-encoder", "--node-decoder"))
        if node and not r.train.column("nfe_dec_fwd")[0] and not r.train.column("nfe_enc_fwd")[0]:
            return f"{name} logged no NFE yet"
    return None


def _why_undecided(records, names) -> Optional[str]:
    """Why the records of NAMES cannot decide a row yet (one is missing, or lacks a number it needs), or None."""
    missing = [name for name in names if name not in records]
    if missing:
        return f"no record of {', '.join(missing)} yet"
    return _numbers_missing(records, names)


def check(records: Dict[str, StudyRecord]) -> List[Conclusion]:
    """Every conclusion, decided where its records exist and hold the numbers it reads."""
    checked = []
    for template, decide in CHECKS:
        conclusion = Conclusion(**vars(template))
        conclusion.experiments = list(template.experiments)
        if conclusion.by_runs:  # it checks each run's records itself
            decide(records, conclusion)
        elif (why := _why_undecided(records, conclusion.experiments)) is not None:
            conclusion.evidence = why
        else:
            decide(records, conclusion)
        if FULL_NODE in conclusion.experiments:
            conclusion.caveat = FULL_NODE_GRADIENT
        checked.append(conclusion)
    return checked


def in_section(conclusions: List[Conclusion], section: str) -> List[Conclusion]:
    """The conclusions whose figure is one of SECTION's (a key of SECTIONS): what that comparison decides."""
    if section not in SECTIONS:
        raise KeyError(f"no section {section!r}: one of {', '.join(SECTIONS)}")
    return [c for c in conclusions if c.figure.split("/")[0] == section]


def markdown(conclusions: List[Conclusion], figures: str = "figures", rules: bool = True) -> str:
    """The conclusions as a Markdown table, each figure linked under FIGURES; without RULES, the short form
    (no "decided by" column) of the README."""
    header = ["#", "conclusion (2019's, unless the row says otherwise)", "verdict", "evidence"] + \
        (["decided by"] if rules else []) + ["figure"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in conclusions:
        figure = f"[{c.figure}]({figures}/{c.figure})" if c.figure and (c.verdict != NOT_TESTABLE or c.partial) else "-"
        evidence = f"{c.evidence}; {c.caveat}" if c.caveat else c.evidence
        cells = [c.number, c.claim, f"**{c.verdict}**", evidence] + ([c.rule] if rules else []) + [figure]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


# The README's copy of the table sits between these lines; scripts/study.sh --report rewrites it.
README_BEGIN = "<!-- the converged study's conclusions: written by scripts/study.sh --report -->"
README_END = "<!-- end of the converged study's conclusions -->"


def in_readme(readme: str, conclusions: List[Conclusion], figures: str) -> str:
    """README (its text) with the table between README_BEGIN and README_END replaced by the short form of
    CONCLUSIONS."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README has no block between {README_BEGIN!r} and {README_END!r}")
    return readme[:begin + len(README_BEGIN)] + "\n" + markdown(conclusions, figures, rules=False) + readme[end:]

