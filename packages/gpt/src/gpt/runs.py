"""gpt's runs on disk: finding a run's checkpoint, and loading its model and tokenizer.

Every gpt command that reads a trained model (`sample`, `eval`, `sft --init`, `chat`,
`chat-eval`, `serve`, `quantize`, `export`) goes through `load_run_model`, so each one accepts
the same references (a run's name, its folder, a checkpoint folder, or nothing for the latest)
and refuses a mismatched tokenizer or model config with the same one-line error. It knows the
three kinds of gpt checkpoint: full weights, LoRA adapters over a base run, and int8 weights.

    model, tok, meta, folder = load_run_model("my-run", torch.device("cpu"))
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from gpt.chat.lora import attach_adapters
from gpt.data import tokenizer_reference
from gpt.deploy.int8 import load_quantized
from gpt.model import GPT, GPTConfig
from shared.checkpoint import load_checkpoint, read_meta
from shared.errors import CheckpointError
from shared.runs import find_checkpoint
from tokenizers_fromscratch import Tokenizer, load_tokenizer

STAGE = "gpt"


def run_folder_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent  # runs/gpt/<name>/checkpoints/<checkpoint>


def saved_model_config(meta: dict[str, Any]) -> dict[str, Any]:
    """The model config a checkpoint saved, as `GPTConfig` takes it today. Runs saved by gpt
    1.2 and before kept `fused_attention` (now a run-time choice) and no `variant` (a preset:
    their `pos`, `norm`, `activation` and `bias` are saved resolved, so it changes nothing)."""
    return {k: v for k, v in meta.get("model", {}).items() if k != "fused_attention"}


def weights_config(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The fields that decide the weights: all but `variant`, a preset over the others."""
    return {k: v for k, v in model_cfg.items() if k != "variant"}


def check_compatible(meta: dict, model_cfg: GPTConfig, tok: Tokenizer, where: Path) -> None:
    """Refuse a checkpoint made with another model config or tokenizer, naming the difference."""
    saved_tok, ours_tok = meta.get("tokenizer", {}), tokenizer_reference(tok)
    if saved_tok != ours_tok:
        raise CheckpointError(
            f"checkpoint {where} was trained with tokenizer {saved_tok}, not {ours_tok}; "
            f"use the tokenizer saved with its run (and the same --tokenizer)"
        )
    saved, ours = weights_config(saved_model_config(meta)), weights_config(asdict(model_cfg))
    diff = [
        f"{k}={saved.get(k)!r} (asked: {ours.get(k)!r})" for k in ours if saved.get(k) != ours[k]
    ]
    if diff:
        raise CheckpointError(
            f"checkpoint {where} has another model config: {', '.join(diff[:3])}; "
            f"resume with the run's own --model options"
        )


def load_run_model(ref: str | None, device: torch.device) -> tuple[GPT, Tokenizer, dict, Path]:
    """The model, tokenizer and meta of a run's latest checkpoint, each checked against the rest."""
    folder = find_checkpoint(STAGE, ref)
    meta = read_meta(folder)
    tok_dir = run_folder_of(folder) / "tokenizer"
    tok = load_tokenizer(tok_dir)
    if meta.get("sft", {}).get("lora"):  # adapters only: the base run's model, then merged
        if meta.get("tokenizer") != tokenizer_reference(tok):
            raise CheckpointError(f"{tok_dir} is not the tokenizer {folder} was trained with")
        base, _, _, _ = load_run_model(meta["sft"]["init"], device)
        adapter = dict(load_checkpoint(folder, framework="torch").model)
        return attach_adapters(base, meta, adapter).to(device).eval(), tok, meta, folder
    try:
        model_cfg = GPTConfig(**saved_model_config(meta))
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{folder}/meta.json has no usable model config ({error})") from None
    check_compatible(meta, model_cfg, tok, folder)
    model = GPT(model_cfg)
    if meta.get("quantized"):  # int8 layers, made by `gpt quantize`
        stored = load_checkpoint(folder, framework="torch").model
        return load_quantized(model, meta["quantized"]["method"], stored), tok, meta, folder
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(folder, expected=expected, framework="torch")
    model.load_state_dict(checkpoint.model)
    return model.to(device).eval(), tok, meta, folder
