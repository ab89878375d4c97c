"""Exact incremental decoding for a NODE decoder on a fixed grid.

A fixed-grid solver (euler, midpoint, rk4, ...) makes the same function evaluations, in the same order,
at every generation step, and a causal decoder's earlier positions never depend on later ones. So a
generation step can solve for the new position alone: at its k-th evaluation, f's self-attention attends
to the keys and values the earlier positions had at the k-th evaluation of their own steps. Those are
kept in fairseq's incremental state, one attention cache per evaluation, and reordered with the beams.

An adaptive solver chooses its steps from the whole state, so its evaluations differ from one step to
the next; there, only recomputing the whole prefix is exact.
"""
from typing import Dict, Optional

from fairseq.incremental_decoding_utils import FairseqIncrementalState
from torch import Tensor

IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


class EvaluationCaches:
    """The self-attention caches of one generation step's solve, handed out one per evaluation.

    ``owner`` keeps them in fairseq's ``incremental_state`` under its own id (``evaluation_K``); the
    attention gets a small incremental state of its own whose buffer is that cache, which it extends
    in place with the new position's keys and values.
    """

    def __init__(self, owner: FairseqIncrementalState, incremental_state: IncrementalState, attention):
        self.owner = owner
        self.incremental_state = incremental_state
        self.attention = attention
        self.evaluations = 0
        self.known = count_evaluations(owner, incremental_state)

    def next_state(self) -> IncrementalState:
        key = _cache_key(self.evaluations)
        self.evaluations += 1
        buffer = self.owner.get_incremental_state(self.incremental_state, key)
        if buffer is None:
            if self.known:
                raise RuntimeError(
                    f"the solver made more evaluations ({self.evaluations}) than at the previous generation step "
                    f"({self.known}): incremental decoding needs a fixed-grid method"
                )
            buffer = {}
            self.owner.set_incremental_state(self.incremental_state, key, buffer)
        return self.attention._set_input_buffer({}, buffer)

    def check_complete(self):
        if self.known and self.evaluations != self.known:
            raise RuntimeError(
                f"the solver made {self.evaluations} evaluations, {self.known} at the previous generation step: "
                "incremental decoding needs a fixed-grid method"
            )


def _cache_key(evaluation: int) -> str:
    return f"evaluation_{evaluation}"


def count_evaluations(owner: FairseqIncrementalState, incremental_state: IncrementalState) -> int:
    count = 0
    while owner.get_incremental_state(incremental_state, _cache_key(count)) is not None:
        count += 1
    return count


def reorder_evaluation_caches(owner: FairseqIncrementalState, incremental_state: IncrementalState, new_order):
    """Beam search moved the hypotheses: every evaluation's cache follows (batch is dimension 0)."""
    for evaluation in range(count_evaluations(owner, incremental_state)):
        buffer = owner.get_incremental_state(incremental_state, _cache_key(evaluation))
        for name, value in buffer.items():
            if value is not None:
                buffer[name] = value.index_select(0, new_order)
