from .ode_block import ODEBlock, masked_rms_norm
from .regularisers import IntegratedRegularisers
from .ode_function import DropoutMasks, ODEFunction, SolveContext
from .node_layers import NODEDecoderLayer, NODEEncoderLayer, NODELayer, SeparatedNODEDecoderLayer

__all__ = [
    "ODEBlock",
    "ODEFunction",
    "SolveContext",
    "DropoutMasks",
    "NODELayer",
    "NODEEncoderLayer",
    "NODEDecoderLayer",
    "SeparatedNODEDecoderLayer",
    "masked_rms_norm",
    "IntegratedRegularisers",
]
