"""An ODE BERT in plain torch and torchdiffeq: the forward pass of node-transformer's ``node_roberta``
(fairseq's RoBERTa whose encoder stack is one Neural-ODE block), with the same parameter names below
``encoder.``, so that the exported weights load one to one. Inference only: the NODE block's training
policies (dropout masks drawn per solve, the adjoint, regularisers, the step budget's skips) stay in the
fairseq plugin.
"""
import math
from typing import Optional

import torch
import torchdiffeq
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

try:
    from .configuration_node_roberta import NODERobertaConfig
except ImportError:  # imported as a plain module (tests)
    from configuration_node_roberta import NODERobertaConfig

ADAPTIVE_METHODS = {"dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun"}


def activation(name):
    if name == "gelu":
        return lambda x: F.gelu(x.float()).type_as(x)  # fairseq's gelu: computed in float32
    if name == "relu":
        return F.relu
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"activation {name!r} is not exported")


def masked_rms_norm(keep, channels):
    """The solver's error norm: RMS over the real positions and the state's first ``channels`` channels."""

    def norm(x):
        x = x[..., :channels]
        if keep is None:
            return x.pow(2).mean().sqrt()
        return ((x * keep).pow(2).sum() / (keep.sum() * x.shape[-1])).sqrt()

    return norm


class SelfAttention(nn.Module):
    """fairseq's MultiheadAttention (self-attention, no dropout) as torch's multi_head_attention_forward."""

    def __init__(self, dim, heads):
        super().__init__()
        self.num_heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, padding_mask):
        out, _ = F.multi_head_attention_forward(
            x, x, x, x.shape[-1], self.num_heads, torch.empty([0]),
            torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias)), None, None, False, 0.0,
            self.out_proj.weight, self.out_proj.bias, training=False, key_padding_mask=padding_mask,
            need_weights=False, use_separate_proj_weight=True, q_proj_weight=self.q_proj.weight,
            k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight)
        return out


class ODEFunction(nn.Module):
    """dh/dt: chain = FFN(LN(SelfAttn(LN(h)))); layer = u + FFN(LN(h + u)) with u = SelfAttn(LN(h))."""

    def __init__(self, config):
        super().__init__()
        self.width = config.hidden_size + config.node_augment_dims * config.num_attention_heads
        self.heads = config.num_attention_heads
        self.time_dependent = config.node_time_dependent
        self.function = config.node_function
        inner = self.width + (self.heads if self.time_dependent else 0)
        self.self_attn_layer_norm = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        self.self_attn = SelfAttention(inner, self.heads)
        self.final_layer_norm = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(inner, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, self.width)
        self.activation = activation(config.activation_fn)

    def forward(self, t, h, keep, padding_mask):
        time = t.to(h).expand(*h.shape[:-1], self.heads) if self.time_dependent else None

        def with_time(x):
            return x if time is None else torch.cat([x, time], dim=-1)

        x = with_time(h)
        attended = self.self_attn(self.self_attn_layer_norm(x), padding_mask)
        if self.function == "chain":
            x, update = attended, None
        else:
            update = attended[..., : self.width]
            x = with_time(h + update)
        dh = self.fc2(self.activation(self.fc1(self.final_layer_norm(x))))
        if update is not None:
            dh = update + dh
        return dh if keep is None else dh * keep


class ODEBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.func = ODEFunction(config)
        self.extra_channels = self.func.width - config.hidden_size
        self.project_out = nn.Linear(self.func.width, config.hidden_size) if self.extra_channels else None

    def solver_options(self, keep):
        config = self.config
        options = {"norm": masked_rms_norm(keep, self.func.width)}
        if config.node_method in ADAPTIVE_METHODS:
            options["max_num_steps"] = config.node_max_num_steps
        elif config.node_step_size is not None:
            options["step_size"] = config.node_step_size
        return options

    def forward(self, x, keep, padding_mask):
        """x: T x B x C -> h(t1): T x B x C."""
        h0 = x if not self.extra_channels else torch.cat([x, x.new_zeros(*x.shape[:-1], self.extra_channels)], -1)
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        ts = torch.tensor(self.config.node_ts, dtype=dtype, device=x.device)
        h = torchdiffeq.odeint(lambda t, y: self.func(t, y, keep, padding_mask), h0, ts,
                               rtol=self.config.node_rtol, atol=self.config.node_atol,
                               method=self.config.node_method, options=self.solver_options(keep))[-1]
        return h if self.project_out is None else self.project_out(h)


class NODELayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ode = ODEBlock(config)


class LearnedPositions(nn.Embedding):
    """fairseq's LearnedPositionalEmbedding: positions count from padding_idx + 1, padding keeps padding_idx."""

    def __init__(self, config):
        super().__init__(config.max_positions + config.pad_token_id + 1, config.hidden_size, config.pad_token_id)

    def forward(self, tokens):
        mask = tokens.ne(self.padding_idx).int()
        positions = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + self.padding_idx
        return super().forward(positions)


class SentenceEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed_scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embed_positions = LearnedPositions(config)
        self.layernorm_embedding = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) \
            if config.layernorm_embedding else None
        self.layers = nn.ModuleList([NODELayer(config)])
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, tokens):
        """tokens: B x T -> features B x T x C."""
        padding_mask = tokens.eq(self.embed_tokens.padding_idx)
        x = self.embed_scale * self.embed_tokens(tokens) + self.embed_positions(tokens)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        has_pads = bool(padding_mask.any())
        if has_pads:
            x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)  # T x B x C
        keep = (~padding_mask).transpose(0, 1).unsqueeze(-1).to(x) if has_pads else None
        for layer in self.layers:
            x = layer.ode(x, keep, padding_mask if has_pads else None)
        return self.layer_norm(x).transpose(0, 1)


class LMHead(nn.Module):
    """RoBERTa's LM head; its output projection is the token embedding (tied)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.activation = activation(config.activation_fn)

    def forward(self, features, weight):
        return F.linear(self.layer_norm(self.activation(self.dense(features))), weight) + self.bias


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.sentence_encoder = SentenceEncoder(config)
        self.lm_head = LMHead(config)


class NODERobertaForMaskedLM(PreTrainedModel):
    config_class = NODERobertaConfig
    base_model_prefix = "node_roberta"
    main_input_name = "input_ids"

    def __init__(self, config):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.post_init()

    def _init_weights(self, module):
        pass  # an exported model's weights all come from its checkpoint

    def get_input_embeddings(self):
        return self.encoder.sentence_encoder.embed_tokens

    def forward(self, input_ids, attention_mask: Optional[torch.Tensor] = None, labels=None, **unused):
        """Logits B x T x vocab. Padding is read from the tokens (pad_token_id), as fairseq does; an
        attention_mask, if given, must agree with it."""
        if attention_mask is not None and bool((attention_mask.eq(0) != input_ids.eq(self.config.pad_token_id)).any()):
            raise ValueError("attention_mask must be 0 exactly at the padding tokens (pad_token_id): the model "
                             "reads its padding from the tokens")
        features = self.encoder.sentence_encoder(input_ids)
        logits = self.encoder.lm_head(features, self.encoder.sentence_encoder.embed_tokens.weight)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.view(-1), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)
