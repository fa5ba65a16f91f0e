"""Exact interop with transformers' `T5ForConditionalGeneration`, both ways.

    from_hf(hf_model)    T5ForConditionalGeneration -> T5 (its config, weights, train/eval mode)
    to_hf(model)         T5 -> T5ForConditionalGeneration holding the same tensors

The weights are the same numbers under other names. Per layer, under `encoder.block.i.` /
`decoder.block.i.` (transformers) and `encoder.layers.i.` / `decoder.layers.i.` (ours):

    transformers                                ours
    layer.0.SelfAttention.{q,k,v,o}             self_attn.{q,k,v,o}
    layer.0.SelfAttention.relative_attention_bias
                                                self_attn.relative_attention_bias  (layer 0 only)
    layer.0.layer_norm                          norm1
    decoder: layer.1.EncDecAttention.{q,k,v,o}  cross_attn.{q,k,v,o}
    decoder: layer.1.layer_norm                 norm2
    layer.-1.DenseReluDense.wi                  ff.fc_in      (relu, T5 1.0)
    layer.-1.DenseReluDense.wo                  ff.fc_out     (relu) / ff.down (gated)
    layer.-1.DenseReluDense.wi_0                ff.gate       (gated-gelu, T5 1.1)
    layer.-1.DenseReluDense.wi_1                ff.up         (gated-gelu)
    layer.-1.layer_norm                         norm_ff

(`layer.-1` is layer.1 in the encoder and layer.2 in the decoder), and outside the layers:

    shared                                      shared
    encoder.embed_tokens, decoder.embed_tokens  (the same matrix as shared: not stored twice)
    {encoder,decoder}.final_layer_norm          {encoder,decoder}.final_norm
    lm_head                                     lm_head (untied) / shared (tied)

Tied or not: transformers 5 ties `lm_head` to `shared` in every freshly built model and reads
`tie_word_embeddings=False` only as "do not rescale the decoder output" (its
`config.scale_decoder_outputs`); it unties the two when a checkpoint holds different matrices.
Ours follows the rescaling (`scale_decoder_outputs`, or `tie_word_embeddings` in older
transformers): a model that rescales is tied, one that does not has its own `lm_head`.
`to_hf` of an untied model gives the transformers model its own `lm_head` matrix.
"""

import re
from dataclasses import fields

from torch import Tensor, nn

from t5.model import T5, T5Config

_BLOCK = re.compile(r"(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.(.+)\.weight$")
_OURS = re.compile(r"(encoder|decoder)\.layers\.(\d+)\.(.+)\.weight$")
_ATTENTION = {"SelfAttention": "self_attn", "EncDecAttention": "cross_attn"}
_FF = {"wi": "fc_in", "wi_0": "gate", "wi_1": "up"}  # wo: fc_out (relu) or down (gated)
# tied copies of `shared`, and transformers' lm_head when it is tied
_SKIPPED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def our_name(hf: str, gated: bool) -> str:
    """transformers' parameter name -> ours (see the table above)."""
    if hf == "shared.weight" or hf == "lm_head.weight":
        return hf
    if hf.endswith("final_layer_norm.weight"):
        return hf.replace("final_layer_norm", "final_norm")
    stack, block, sub, rest = _BLOCK.match(hf).groups()
    ff_sub = "1" if stack == "encoder" else "2"
    if rest == "layer_norm":
        norm = {"0": "norm1", ff_sub: "norm_ff"}.get(sub, "norm2")
        return f"{stack}.layers.{block}.{norm}.weight"
    module, _, part = rest.partition(".")
    if module in _ATTENTION:
        return f"{stack}.layers.{block}.{_ATTENTION[module]}.{part}.weight"
    if module == "DenseReluDense":
        name = _FF.get(part, "down" if gated else "fc_out")
        return f"{stack}.layers.{block}.ff.{name}.weight"
    raise KeyError(f"no T5 parameter is called {hf!r}")


def hf_name(ours: str, gated: bool) -> str:
    """Ours -> transformers' parameter name (the inverse of `our_name`)."""
    if ours == "shared.weight" or ours == "lm_head.weight":
        return ours
    if ours.endswith("final_norm.weight"):
        return ours.replace("final_norm", "final_layer_norm")
    stack, layer, rest = _OURS.match(ours).groups()
    ff_sub = "1" if stack == "encoder" else "2"
    prefix = f"{stack}.block.{layer}.layer"
    norms = {"norm1": "0", "norm2": "1", "norm_ff": ff_sub}
    if rest in norms:
        return f"{prefix}.{norms[rest]}.layer_norm.weight"
    module, _, part = rest.partition(".")
    if module == "self_attn":
        return f"{prefix}.0.SelfAttention.{part}.weight"
    if module == "cross_attn":
        return f"{prefix}.1.EncDecAttention.{part}.weight"
    if module == "ff":
        inverse = {v: k for k, v in _FF.items()} | {"fc_out": "wo", "down": "wo"}
        return f"{prefix}.{ff_sub}.DenseReluDense.{inverse[part]}.weight"
    raise KeyError(f"no T5 parameter is called {ours!r}")


def config_from_hf(hf_config: object) -> T5Config:
    """Our T5Config from transformers' (any version from 4.45)."""
    values = hf_config.to_dict()
    scale = getattr(hf_config, "scale_decoder_outputs", None)  # transformers >= 5
    tied = bool(values.get("tie_word_embeddings", True) if scale is None else scale)
    kept = {f.name: values[f.name] for f in fields(T5Config) if values.get(f.name) is not None}
    kept["tie_word_embeddings"] = tied
    if isinstance(kept.get("eos_token_id"), list):  # transformers allows several; T5 has one
        kept["eos_token_id"] = kept["eos_token_id"][0]
    return T5Config(**kept)


def from_hf(hf_model: nn.Module) -> T5:
    """Ours with a transformers T5's config and weights (copies; and its train/eval mode)."""
    kind = type(hf_model).__name__
    if kind != "T5ForConditionalGeneration":
        raise TypeError(f"from_hf takes T5ForConditionalGeneration, got {kind}")
    config = config_from_hf(hf_model.config)
    model = T5(config)
    gated = config.feed_forward_proj == "gated-gelu"
    ours = model.state_dict()
    loaded: dict[str, Tensor] = {}
    for name, tensor in hf_model.state_dict().items():
        if name in _SKIPPED or (name == "lm_head.weight" and config.tie_word_embeddings):
            continue
        if name.endswith("EncDecAttention.relative_attention_bias.weight"):
            continue  # in some old checkpoints; transformers ignores it too
        target = our_name(name, gated)
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise ValueError(
                f"{name}: shape {tuple(tensor.shape)}, ours {tuple(ours[target].shape)}"
            )
        loaded[target] = tensor.detach().clone()
    missing = set(ours) - set(loaded)
    if missing:
        raise ValueError(f"from_hf: no weights for {', '.join(sorted(missing))}")
    model.load_state_dict(loaded)
    return model.train(hf_model.training)


def to_hf(model: T5) -> nn.Module:
    """transformers' T5ForConditionalGeneration with our config and a copy of our weights."""
    import torch
    import transformers

    c = model.config
    values = {f.name: getattr(c, f.name) for f in fields(c)}
    hf_config = transformers.T5Config(**values)
    hf_model = transformers.T5ForConditionalGeneration(hf_config)
    gated = c.feed_forward_proj == "gated-gelu"
    if not c.tie_word_embeddings and hf_model.lm_head.weight is hf_model.shared.weight:
        # transformers 5 ties every fresh model; give this one its own output matrix
        hf_model.lm_head.weight = nn.Parameter(torch.empty_like(hf_model.shared.weight))
        tied = getattr(hf_model, "all_tied_weights_keys", None)
        if isinstance(tied, dict):
            tied.pop("lm_head.weight", None)
    state = {hf_name(k, gated): v.detach().clone() for k, v in model.state_dict().items()}
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    allowed = {*_SKIPPED, "lm_head.weight"} if c.tie_word_embeddings else set(_SKIPPED)
    if unexpected or set(missing) - allowed:
        raise RuntimeError(f"to_hf: missing {missing}, unexpected {unexpected}")
    return hf_model.train(model.training)
