"""The model code an exported ODE BERT carries for ``trust_remote_code`` (node_experiments/hf_export.py copies
these files into the export directory). They import torch, transformers, torchdiffeq, sacremoses and
subword-nmt only: an exported model loads where neither fairseq nor this project is installed."""
