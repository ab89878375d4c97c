"""fairseq user-dir: Neural-ODE Transformer models (use with ``--user-dir node_transformer``)."""
