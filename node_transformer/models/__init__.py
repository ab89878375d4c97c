from . import node_roberta  # noqa: F401  (registers node_roberta and its architectures)
from . import node_transformer  # noqa: F401  (registers the model and its architectures)
