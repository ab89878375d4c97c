from .ode_block import ODEBlock, masked_rms_norm
from .ode_function import ODEFunction
from .node_layers import NODEDecoderLayer, NODEEncoderLayer, SeparatedNODEDecoderLayer

__all__ = [
    "ODEBlock",
    "ODEFunction",
    "NODEEncoderLayer",
    "NODEDecoderLayer",
    "SeparatedNODEDecoderLayer",
    "masked_rms_norm",
]
