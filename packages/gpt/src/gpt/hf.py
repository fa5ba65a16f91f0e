"""Weights to and from transformers: GPT2LMHeadModel and LlamaForCausalLM.

    from transformers import GPT2LMHeadModel
    ours = from_hf(GPT2LMHeadModel.from_pretrained("gpt2"))   # same logits, to 1e-5 in float32
    theirs = to_hf(ours)                                       # and back, every tensor unchanged

Both architectures are configurations of `gpt.GPT`, so converting is renaming, plus two
details a learner should see once:

- GPT-2 stores its linear layers as `Conv1D`, whose weight is (in, out): the transpose of
  `nn.Linear`'s (out, in). And it fuses the query, key and value projections into one
  `c_attn` of width 3C; we split it into `q_proj`, `k_proj`, `v_proj`.
- Llama's names are ours already (`q_proj` ... `o_proj`, `gate_proj`/`up_proj`/`down_proj` =
  FeedForward's `gate`/`up`/`down`); grouped-query attention just means `k_proj` and `v_proj`
  have n_kv_head * head_dim rows. RoPE has no weights: `rope_theta` goes into the config, and
  our rotary layout (rotate half) is transformers' own, so q and k need no permutation.

transformers is imported inside the functions only (it is the optional `hf` extra). Not covered:
RoPE scaling (Llama 3.1's long-context "llama3" rope type), GPT-2's per-layer attention scaling
options, and models other than these two.
"""

from typing import Any

import torch
from torch import Tensor

from gpt.model import GPT, GPTConfig
from shared.errors import UsageError

_GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
_GPT2_ACTIVATIONS_BACK = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def from_hf(hf_model: Any) -> GPT:
    """Our GPT with the weights of a transformers GPT2LMHeadModel or LlamaForCausalLM."""
    model_type = getattr(getattr(hf_model, "config", None), "model_type", None)
    if model_type == "gpt2":
        cfg, state = _from_gpt2(hf_model)
    elif model_type == "llama":
        cfg, state = _from_llama(hf_model)
    else:
        raise UsageError(
            f"from_hf loads GPT2LMHeadModel and LlamaForCausalLM, got {type(hf_model).__name__} "
            f"(model_type {model_type!r})"
        )
    ref = next(hf_model.parameters())
    model = GPT(cfg).to(device=ref.device, dtype=ref.dtype)
    model.load_state_dict(state, strict=True)
    return model.train(hf_model.training)


def to_hf(model: GPT) -> Any:
    """A transformers model with our weights: GPT2LMHeadModel for the GPT-2 configuration,
    LlamaForCausalLM for the modern one. Other mixes have no transformers twin (UsageError)."""
    cfg = model.config
    if (cfg.pos, cfg.norm) == ("learned", "layernorm") and cfg.activation != "swiglu":
        if not cfg.bias or cfg.n_kv_head != cfg.n_head or cfg.head_dim * cfg.n_head != cfg.n_embd:
            raise UsageError(
                "GPT-2 has biases, n_kv_head == n_head and head_dim == n_embd / n_head; "
                f"this model has bias={cfg.bias}, n_kv_head={cfg.n_kv_head}, "
                f"head_dim={cfg.head_dim}"
            )
        hf_model, state = _to_gpt2(model)
    elif (cfg.pos, cfg.norm, cfg.activation) == ("rope", "rmsnorm", "swiglu"):
        hf_model, state = _to_llama(model)
    else:
        raise UsageError(
            f"no transformers twin for pos={cfg.pos}, norm={cfg.norm}, activation="
            f"{cfg.activation}: GPT-2 is learned/layernorm/gelu, Llama is rope/rmsnorm/swiglu"
        )
    ref = next(model.parameters())
    hf_model = hf_model.to(device=ref.device, dtype=ref.dtype)
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"to_hf: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return hf_model.train(model.training)


# ----------------------------------------------------------------------------------------------
# GPT-2


def _from_gpt2(hf_model: Any) -> tuple[GPTConfig, dict[str, Tensor]]:
    c = hf_model.config
    if c.activation_function not in _GPT2_ACTIVATIONS and c.activation_function != "relu":
        raise UsageError(f"GPT-2 activation {c.activation_function!r} is not supported")
    if not c.scale_attn_weights or c.scale_attn_by_inverse_layer_idx:
        raise UsageError("GPT-2 configs with non-standard attention scaling are not supported")
    cfg = GPTConfig.gpt2(
        vocab_size=c.vocab_size,
        block_size=c.n_positions,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        mlp_hidden=c.n_inner or 4 * c.n_embd,
        activation=_GPT2_ACTIVATIONS.get(c.activation_function, "relu"),
        norm_eps=c.layer_norm_epsilon,
        tie_embeddings=bool(getattr(c, "tie_word_embeddings", True)),
    )
    sd = {k: v.detach() for k, v in hf_model.state_dict().items()}
    state = {
        "tok_emb.weight": sd["transformer.wte.weight"],
        "pos_emb.weight": sd["transformer.wpe.weight"],
        "norm_f.weight": sd["transformer.ln_f.weight"],
        "norm_f.bias": sd["transformer.ln_f.bias"],
        "lm_head.weight": sd.get("lm_head.weight", sd["transformer.wte.weight"]),
    }
    for i in range(c.n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        # Conv1D keeps (in, out); nn.Linear wants (out, in): transpose every weight
        q, k, v = sd[h + "attn.c_attn.weight"].t().chunk(3, dim=0)  # 3 x (C, C)
        qb, kb, vb = sd[h + "attn.c_attn.bias"].chunk(3)  # 3 x (C,)
        state |= {
            b + "norm1.weight": sd[h + "ln_1.weight"],
            b + "norm1.bias": sd[h + "ln_1.bias"],
            b + "attn.q_proj.weight": q,
            b + "attn.k_proj.weight": k,
            b + "attn.v_proj.weight": v,
            b + "attn.q_proj.bias": qb,
            b + "attn.k_proj.bias": kb,
            b + "attn.v_proj.bias": vb,
            b + "attn.o_proj.weight": sd[h + "attn.c_proj.weight"].t(),
            b + "attn.o_proj.bias": sd[h + "attn.c_proj.bias"],
            b + "norm2.weight": sd[h + "ln_2.weight"],
            b + "norm2.bias": sd[h + "ln_2.bias"],
            b + "mlp.fc_in.weight": sd[h + "mlp.c_fc.weight"].t(),
            b + "mlp.fc_in.bias": sd[h + "mlp.c_fc.bias"],
            b + "mlp.fc_out.weight": sd[h + "mlp.c_proj.weight"].t(),
            b + "mlp.fc_out.bias": sd[h + "mlp.c_proj.bias"],
        }
    return cfg, {k: v.contiguous() for k, v in state.items()}


def _to_gpt2(model: GPT) -> tuple[Any, dict[str, Tensor]]:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.config
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.mlp_hidden,
        activation_function=_GPT2_ACTIVATIONS_BACK[cfg.activation],
        layer_norm_epsilon=cfg.norm_eps,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
    )
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    state = {
        "transformer.wte.weight": sd["tok_emb.weight"],
        "transformer.wpe.weight": sd["pos_emb.weight"],
        "transformer.ln_f.weight": sd["norm_f.weight"],
        "transformer.ln_f.bias": sd["norm_f.bias"],
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(cfg.n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        qkv = [sd[b + f"attn.{p}_proj.weight"] for p in "qkv"]
        state |= {
            h + "ln_1.weight": sd[b + "norm1.weight"],
            h + "ln_1.bias": sd[b + "norm1.bias"],
            h + "attn.c_attn.weight": torch.cat(qkv, dim=0).t(),  # (C, 3C)
            h + "attn.c_attn.bias": torch.cat([sd[b + f"attn.{p}_proj.bias"] for p in "qkv"]),
            h + "attn.c_proj.weight": sd[b + "attn.o_proj.weight"].t(),
            h + "attn.c_proj.bias": sd[b + "attn.o_proj.bias"],
            h + "ln_2.weight": sd[b + "norm2.weight"],
            h + "ln_2.bias": sd[b + "norm2.bias"],
            h + "mlp.c_fc.weight": sd[b + "mlp.fc_in.weight"].t(),
            h + "mlp.c_fc.bias": sd[b + "mlp.fc_in.bias"],
            h + "mlp.c_proj.weight": sd[b + "mlp.fc_out.weight"].t(),
            h + "mlp.c_proj.bias": sd[b + "mlp.fc_out.bias"],
        }
    return GPT2LMHeadModel(hf_cfg), {k: v.contiguous() for k, v in state.items()}


# ----------------------------------------------------------------------------------------------
# Llama

_LLAMA_LAYER = {  # ours (under blocks.i.) -> transformers (under model.layers.i.)
    "norm1.weight": "input_layernorm.weight",
    "attn.q_proj.weight": "self_attn.q_proj.weight",
    "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight",
    "attn.o_proj.weight": "self_attn.o_proj.weight",
    "norm2.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}
_LLAMA_BIASES = {  # present when attention_bias / mlp_bias are set
    "attn.q_proj.bias": "self_attn.q_proj.bias",
    "attn.k_proj.bias": "self_attn.k_proj.bias",
    "attn.v_proj.bias": "self_attn.v_proj.bias",
    "attn.o_proj.bias": "self_attn.o_proj.bias",
    "mlp.gate.bias": "mlp.gate_proj.bias",
    "mlp.up.bias": "mlp.up_proj.bias",
    "mlp.down.bias": "mlp.down_proj.bias",
}


def _rope_theta(c: Any) -> float:
    """rope_theta lives in `rope_parameters` in transformers 5, on the config itself before."""
    params = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise UsageError(f"Llama RoPE scaling {rope_type!r} is not supported (only 'default')")
    theta = params.get("rope_theta", getattr(c, "rope_theta", None))
    return float(theta if theta is not None else 10000.0)


def _from_llama(hf_model: Any) -> tuple[GPTConfig, dict[str, Tensor]]:
    c = hf_model.config
    if c.hidden_act != "silu":
        raise UsageError(f"Llama with hidden_act {c.hidden_act!r} is not supported (only silu)")
    attention_bias, mlp_bias = bool(c.attention_bias), bool(getattr(c, "mlp_bias", False))
    if attention_bias != mlp_bias:
        raise UsageError("Llama configs with attention_bias != mlp_bias are not supported")
    cfg = GPTConfig.modern(
        vocab_size=c.vocab_size,
        block_size=c.max_position_embeddings,
        n_layer=c.num_hidden_layers,
        n_head=c.num_attention_heads,
        n_kv_head=c.num_key_value_heads or c.num_attention_heads,
        n_embd=c.hidden_size,
        head_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
        mlp_hidden=c.intermediate_size,
        norm_eps=c.rms_norm_eps,
        bias=attention_bias,
        tie_embeddings=bool(c.tie_word_embeddings),
        rope_theta=_rope_theta(c),
    )
    sd = {k: v.detach() for k, v in hf_model.state_dict().items()}
    names = _LLAMA_LAYER | (_LLAMA_BIASES if cfg.bias else {})
    state = {
        "tok_emb.weight": sd["model.embed_tokens.weight"],
        "norm_f.weight": sd["model.norm.weight"],
        "lm_head.weight": sd.get("lm_head.weight", sd["model.embed_tokens.weight"]),
    }
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            state[f"blocks.{i}.{ours}"] = sd[f"model.layers.{i}.{theirs}"]
    return cfg, state


def _to_llama(model: GPT) -> tuple[Any, dict[str, Tensor]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = model.config
    hf_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.n_embd,
        intermediate_size=cfg.mlp_hidden,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.block_size,
        rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=cfg.bias,
        mlp_bias=cfg.bias,
        attention_dropout=cfg.dropout,
        rope_theta=cfg.rope_theta,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    names = _LLAMA_LAYER | (_LLAMA_BIASES if cfg.bias else {})
    state = {
        "model.embed_tokens.weight": sd["tok_emb.weight"],
        "model.norm.weight": sd["norm_f.weight"],
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            state[f"model.layers.{i}.{theirs}"] = sd[f"blocks.{i}.{ours}"]
    return LlamaForCausalLM(hf_cfg), state
