"""Exact interop with transformers' BERT, and loading a transformers folder without it.

    from_hf(hf_model)    BertModel / BertForMaskedLM / BertForSequenceClassification -> ours
    to_hf(model)         ours -> the matching transformers class, the same tensors
    load_folder(path)    a folder holding config.json + model.safetensors (+ vocab.txt) -> ours,
                         read with safetensors alone: no transformers needed at run time

The weights are the same numbers under other names. Under `encoder.layer.i.` (transformers) and
`layers.i.` (ours):

    transformers                          ours
    attention.self.query / key / value    self_attn.q_proj / k_proj / v_proj
    attention.output.dense                self_attn.out_proj
    attention.output.LayerNorm            norm1       (post-norm: after the attention's residual)
    intermediate.dense                    ff.fc_in
    output.dense                          ff.fc_out
    output.LayerNorm                      norm2       (after the feed-forward's residual)

and `embeddings.LayerNorm` -> `embeddings.norm`, `pooler.dense` -> `pooler`,
`cls.predictions.transform.{dense,LayerNorm}` -> `head.{dense,norm}`, `cls.predictions.bias` ->
`head.bias` (the decoder matrix is the tied word embedding in both).
"""

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bert.model import Bert, BertConfig, BertForMaskedLM, BertForSequenceClassification
from shared.atomic import replace_folder
from shared.errors import UsageError

BertModule = Bert | BertForMaskedLM | BertForSequenceClassification

_LAYER = {  # transformers (under encoder.layer.i.) -> ours (under layers.i.)
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "ff.fc_in",
    "output.dense": "ff.fc_out",
    "output.LayerNorm": "norm2",
}
_TOP = {  # transformers -> ours, outside the layers (the encoder's own prefix removed)
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler",
    "cls.predictions.transform.dense": "head.dense",
    "cls.predictions.transform.LayerNorm": "head.norm",
}
# a buffer; the tied matrix; a copy of the bias
_IGNORED = ("embeddings.position_ids", "cls.predictions.decoder.weight",
            "cls.predictions.decoder.bias")  # fmt: skip


def our_name(hf_name: str, encoder_prefix: str) -> str | None:
    """transformers' parameter name -> ours, or None for one we do not keep (see _IGNORED)."""
    name = hf_name
    if name.startswith("bert."):
        name = name[len("bert.") :]
    if name in _IGNORED:
        return None
    if name == "cls.predictions.bias":
        return "head.bias"
    if name.startswith("classifier."):
        return name
    layer = re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$", name)
    if layer:
        index, module, kind = layer.groups()
        return f"{encoder_prefix}layers.{index}.{_LAYER[module]}.{kind}"
    module, _, kind = name.rpartition(".")
    module = _TOP.get(module, module)
    prefix = "" if module.startswith("head.") else encoder_prefix
    return f"{prefix}{module}.{kind}"


def hf_name(our: str, hf_encoder_prefix: str) -> str:
    """Ours -> transformers' parameter name (the inverse of `our_name`)."""
    if our.startswith("classifier."):
        return our
    if our == "head.bias":
        return "cls.predictions.bias"
    name = our[len("bert.") :] if our.startswith("bert.") else our
    layer = re.match(r"layers\.(\d+)\.(.+)\.(weight|bias)$", name)
    if layer:
        index, module, kind = layer.groups()
        inverse = {v: k for k, v in _LAYER.items()}
        return f"{hf_encoder_prefix}encoder.layer.{index}.{inverse[module]}.{kind}"
    module, _, kind = name.rpartition(".")
    inverse = {v: k for k, v in _TOP.items()}
    module = inverse.get(module, module)
    prefix = "" if module.startswith("cls.") else hf_encoder_prefix
    return f"{prefix}{module}.{kind}"


def config_from_dict(values: dict[str, Any], num_labels: int | None = None) -> BertConfig:
    """Our config from transformers' config.json (unknown keys ignored, unsupported refused)."""
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise UsageError("only absolute position embeddings are supported (BERT's own)")
    if values.get("is_decoder", False):
        raise UsageError("this is a decoder configuration; bert builds encoders only")
    names = {f.name for f in fields(BertConfig)}
    kept = {k: v for k, v in values.items() if k in names}
    if num_labels is not None:
        kept["num_labels"] = num_labels
    elif "id2label" in values:
        kept["num_labels"] = len(values["id2label"])
    try:
        return BertConfig(**kept)
    except (TypeError, ValueError) as error:
        raise UsageError(f"unsupported BERT configuration: {error}") from None


def _build(kind: str, config: BertConfig) -> BertModule:
    if kind == "BertForMaskedLM":
        return BertForMaskedLM(config)
    if kind == "BertForSequenceClassification":
        return BertForSequenceClassification(config)
    return Bert(config)


def _load_state(model: BertModule, hf_state: dict[str, Tensor], where: str) -> BertModule:
    """Copy transformers-named tensors into `model`: every parameter found, shapes checked."""
    prefix = "" if isinstance(model, Bert) else "bert."
    ours = model.state_dict()
    loaded = {}
    for name, tensor in hf_state.items():
        target = our_name(name, prefix)
        if target is None:
            continue
        if target not in ours:
            if target.startswith(("pooler", "bert.pooler")) or target.startswith("head."):
                continue  # a pooler or an MLM head the chosen model does not have
            raise UsageError(f"{where}: unexpected tensor {name!r} (ours would be {target!r})")
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise UsageError(
                f"{where}: {name} has shape {tuple(tensor.shape)}, the config says "
                f"{tuple(ours[target].shape)}; the weights do not match config.json"
            )
        loaded[target] = tensor
    tied = "head.decoder_weight"
    missing = [k for k in ours if k not in loaded and k != tied]
    # A new classifier head starts untrained; so does the pooler of a model pretrained with
    # masked LM alone (BERT trained its pooler with next-sentence prediction, which we skip).
    fresh = {"classifier.weight", "classifier.bias", "bert.pooler.weight", "bert.pooler.bias"}
    if set(missing) - fresh:
        raise UsageError(f"{where}: no weights for {', '.join(sorted(set(missing) - fresh))}")
    model.load_state_dict(loaded, strict=False)
    if isinstance(model, BertForMaskedLM):  # load_state_dict keeps the tie: check it
        assert model.head.decoder_weight is model.bert.embeddings.word_embeddings.weight
    return model


def from_hf(hf_model: nn.Module) -> BertModule:
    """Ours with a transformers BERT's config and weights (and its train/eval mode)."""
    kind = type(hf_model).__name__
    if kind not in ("BertModel", "BertForMaskedLM", "BertForSequenceClassification"):
        raise TypeError(f"from_hf takes BertModel, BertForMaskedLM or "
                        f"BertForSequenceClassification, got {kind}")  # fmt: skip
    config = config_from_dict(hf_model.config.to_dict(), hf_model.config.num_labels)
    model = _build(kind, config)
    if kind == "BertModel" and hf_model.pooler is None:
        model.pooler = None
    state = {k: v.detach().clone() for k, v in hf_model.state_dict().items()}
    return _load_state(model, state, kind).train(hf_model.training)


def to_hf(model: BertModule) -> nn.Module:
    """The transformers model with our weights: BertModel, BertForMaskedLM or ...Classification."""
    import transformers

    c = model.config
    if isinstance(model, BertForSequenceClassification) and c.classifier_pooling != "cls":
        raise UsageError(
            "transformers' BertForSequenceClassification reads the pooler only; a classifier "
            "fine-tuned with --pooling mean has no exact twin there (export its .bert instead)"
        )
    hf_config = transformers.BertConfig(**{f.name: getattr(c, f.name) for f in fields(c)})
    if isinstance(model, BertForMaskedLM):
        hf_model, prefix = transformers.BertForMaskedLM(hf_config), "bert."
    elif isinstance(model, BertForSequenceClassification):
        hf_model, prefix = transformers.BertForSequenceClassification(hf_config), "bert."
    else:
        hf_model = transformers.BertModel(hf_config, add_pooling_layer=model.pooler is not None)
        prefix = ""
    state = {hf_name(k, prefix): v.detach().clone() for k, v in model.state_dict().items()
             if k != "head.decoder_weight"}  # fmt: skip
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    allowed = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
               "embeddings.position_ids", "bert.embeddings.position_ids"}  # fmt: skip
    if unexpected or set(missing) - allowed:
        raise RuntimeError(f"to_hf: missing {missing}, unexpected {unexpected}")
    if isinstance(model, BertForMaskedLM):
        hf_model.tie_weights()
    return hf_model.train(model.training)


def load_folder(path: Path | str, kind: str = "Bert", num_labels: int | None = None) -> BertModule:
    """A transformers-format folder (config.json, model.safetensors) -> ours, without transformers.

    `kind` is "Bert", "BertForMaskedLM" or "BertForSequenceClassification"; a classifier built
    from an encoder-only checkpoint starts with a fresh head (that is what fine-tuning trains).
    """
    from safetensors.torch import load_file

    folder = Path(path)
    config_file, weights_file = folder / "config.json", folder / "model.safetensors"
    for needed in (config_file, weights_file):
        if not needed.is_file():
            raise UsageError(f"{folder} has no {needed.name}; give a folder in transformers' "
                             "format (config.json, model.safetensors, vocab.txt)")  # fmt: skip
    config = config_from_dict(json.loads(config_file.read_text()), num_labels)
    model = _build(kind, config)
    state = load_file(str(weights_file))
    return _load_state(model, state, str(folder)).eval()


def copy_encoder(source: BertModule, target: BertModule) -> None:
    """Copy `source`'s embeddings and layers (and pooler, where both have one) into `target`."""
    src = source if isinstance(source, Bert) else source.bert
    dst = target if isinstance(target, Bert) else target.bert
    with torch.no_grad():
        dst.embeddings.load_state_dict(src.embeddings.state_dict())
        dst.layers.load_state_dict(src.layers.state_dict())
        if src.pooler is not None and dst.pooler is not None:
            dst.pooler.load_state_dict(src.pooler.state_dict())


def save_folder(model: BertModule, folder: Path | str, tokenizer: Any = None) -> Path:
    """Write `model` as transformers' folder (config.json, model.safetensors, and the tokenizer's
    vocab.txt when given), atomically: a crash leaves the old folder or the new one.

    The tensors carry transformers' names, so `transformers.AutoModel.from_pretrained(folder)`
    and `load_folder(folder)` both read it.
    """
    import shutil
    import tempfile

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        prefix = "" if isinstance(model, Bert) else "bert."
        state = {hf_name(k, prefix): v.detach().to("cpu", torch.float32).contiguous()
                 for k, v in model.state_dict().items() if k != "head.decoder_weight"}  # fmt: skip
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = {f.name: getattr(model.config, f.name) for f in fields(model.config)}
        architecture = "BertModel" if isinstance(model, Bert) else type(model).__name__
        config.update(model_type="bert", architectures=[architecture])
        labels = model.config.num_labels
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(labels)}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save(tmp)
        replace_folder(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
