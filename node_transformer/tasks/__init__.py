from . import node_translation  # noqa: F401  (registers the node_translation task)
