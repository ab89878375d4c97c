"""fairseq user-dir: Neural-ODE Transformer models (use with ``--user-dir node_transformer``)."""
from . import checkpoint_safety  # noqa: F401  (allow-lists fairseq checkpoint classes for torch.load)
from . import cli_help  # noqa: F401  (--help lists model options)
from . import models  # noqa: F401
from . import tasks  # noqa: F401
