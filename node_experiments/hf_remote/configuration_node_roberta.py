"""The configuration of an ODE BERT exported from node-transformer (``node_roberta`` with ``--node-encoder``)."""
from transformers import PretrainedConfig


class NODERobertaConfig(PretrainedConfig):
    model_type = "node_roberta"

    def __init__(self, vocab_size=32, hidden_size=128, intermediate_size=256, num_attention_heads=4,
                 max_positions=128, pad_token_id=1, bos_token_id=0, eos_token_id=2, mask_token_id=None,
                 layernorm_embedding=True, scale_embedding=False, activation_fn="gelu", layer_norm_eps=1e-5,
                 node_ts=(0.0, 1.0), node_method="dopri5", node_rtol=0.01, node_atol=0.01, node_step_size=None,
                 node_max_num_steps=1000, node_augment_dims=0, node_time_dependent=False, node_function="chain",
                 **kwargs):
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_attention_heads = num_attention_heads
        self.max_positions = max_positions
        self.mask_token_id = mask_token_id
        self.layernorm_embedding = layernorm_embedding
        self.scale_embedding = scale_embedding
        self.activation_fn = activation_fn
        self.layer_norm_eps = layer_norm_eps
        self.node_ts = list(node_ts)
        self.node_method = node_method
        self.node_rtol = node_rtol
        self.node_atol = node_atol
        self.node_step_size = node_step_size
        self.node_max_num_steps = node_max_num_steps
        self.node_augment_dims = node_augment_dims
        self.node_time_dependent = node_time_dependent
        self.node_function = node_function
