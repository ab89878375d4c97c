"""A standalone NODE block to time the solver on: a decoder-like ODE function (self-attention with a causal
mask, cross-attention to a memory, FFN) with random weights, its initial state and its solve's inputs."""
from dataclasses import dataclass
from typing import NamedTuple

import torch

from node_transformer.modules import DropoutMasks, ODEFunction, SolveContext


class BlockSize(NamedTuple):
    width: int
    heads: int
    ffn: int
    length: int
    batch: int


QUICK_SIZE = BlockSize(width=16, heads=2, ffn=32, length=6, batch=4)
FULL_SIZE = BlockSize(width=128, heads=4, ffn=256, length=20, batch=64)


@dataclass(frozen=True)
class BlockProblem:
    """dh/dt = func(t, h, *args) from h0 over the times t; args are (context, dropout masks)."""

    func: ODEFunction
    h0: torch.Tensor
    context: SolveContext
    dropout: DropoutMasks
    t: torch.Tensor

    @property
    def args(self):
        return (self.context, self.dropout)


def decoder_block_problem(size: BlockSize) -> BlockProblem:
    """The same problem for a size on every call: seeded weights, state and memory; no dropout (eval mode)."""
    width, heads, ffn, length, batch = size
    torch.manual_seed(0)
    func = ODEFunction(width, heads, ffn, self_attention=True, cross_attention=True, encoder_dim=width).eval()
    torch.manual_seed(1)
    h0 = torch.randn(length, batch, width, requires_grad=True)
    memory = torch.randn(length, batch, width, requires_grad=True)
    causal_mask = torch.triu(torch.full((length, length), float("-inf")), 1)
    return BlockProblem(func=func, h0=h0, context=SolveContext(self_attn_mask=causal_mask, memory=memory),
                        dropout=DropoutMasks(), t=torch.tensor([0.0, 1.0]))
