from . import node_masked_lm  # noqa: F401  (registers the node_masked_lm task)
from . import node_sentence_prediction  # noqa: F401  (registers the node_sentence_prediction task)
from . import node_translation  # noqa: F401  (registers the node_translation task)
