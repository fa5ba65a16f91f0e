"""LoRA: fine-tune a few low-rank matrices beside each frozen weight matrix.

    y = x W^T + b  +  (alpha / r) * dropout(x) A^T B^T          W (out, in) frozen
                                                                 A (r, in), B (out, r) trained

Fine-tuning changes a pretrained weight by some ΔW. LoRA (Hu et al., 2021) bets that the change a
new task needs has low rank, and writes it as ΔW = (alpha / r) B A with r much smaller than in
and out: a 128 x 128 matrix has 16,384 weights, its rank-8 adapter 2,048. Only A and B train,
so the optimizer keeps moments for a few percent of the weights, and a fine-tuned model is the
base run plus a small adapter file.

B starts at zero, so the adapted model starts exactly as the base model; A starts random (as
an `nn.Linear` would), so B's first gradient is not zero. `alpha / r` keeps the update's size
about the same when you change r.

Why the merge is exact: x W^T + s x A^T B^T = x (W + s B A)^T. Adding s B A to W gives one
matrix with the same outputs (to float round-off) and no extra cost per token; subtracting it
again restores W. `merge` does that before serving; `unmerge` undoes it to train on.
"""

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gpt.chat.format import grow_vocabulary
from gpt.model import GPT
from shared.errors import CheckpointError


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    # which nn.Linear layers get an adapter: regular expressions matched against the end of
    # the module's name (`blocks.0.attn.q_proj`); the default covers attention and the MLP
    targets: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "fc_in",
            "fc_out",
            "gate",
            "up",
            "down",
        ]  # fmt: skip
    )


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update; the same call signature."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        self.rank, self.scaling = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and peft) do
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)  # (..., out)
        if self.merged:
            return y
        a = self.dropout(x) @ self.lora_A.to(x.dtype).T  # (..., r)
        return y + (a @ self.lora_B.to(x.dtype).T) * self.scaling  # (..., out)

    def delta(self) -> Tensor:
        """s B A: the change to W the adapter stands for, (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta().to(self.base.weight.dtype)
            self.merged = False


def _targeted(name: str, patterns: list[str]) -> bool:
    return any(re.search(rf"(^|\.)({p})$", name) for p in patterns)


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Wrap every targeted `nn.Linear` of `model` in a `LoRALinear` and freeze everything
    but the adapters; returns the wrapped layers' names. (A tied output layer shares the
    embedding matrix and is never wrapped.)"""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and _targeted(full, cfg.targets):
                setattr(module, child_name, LoRALinear(child, cfg.rank, cfg.alpha, cfg.dropout))
                wrapped.append(full)
    if not wrapped:
        raise ValueError(f"no nn.Linear layer matches the LoRA targets {cfg.targets}")
    return wrapped


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapters alone, by name (`blocks.0.attn.q_proj.lora_A`, ...): what a LoRA run saves."""
    return {k: v for k, v in model.state_dict().items() if ".lora_A" in k or ".lora_B" in k}


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.unmerge()


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's weights with every adapter merged in, under the names of the model without
    adapters (`...q_proj.weight`, not `...q_proj.base.weight`): a checkpoint any gpt command
    loads as an ordinary model."""
    merge_lora(model)
    try:
        state = {k.replace(".base.", "."): v.detach().clone() for k, v in model.state_dict().items()
                 if ".lora_A" not in k and ".lora_B" not in k}  # fmt: skip
    finally:
        unmerge_lora(model)
    return state


def new_token_layers(model: GPT) -> list[str]:
    """The layers with a row per token that a LoRA run trains for its new tokens: the
    embedding, and the output layer when it is not tied to it."""
    return ["tok_emb"] if model.config.tie_embeddings else ["tok_emb", "lm_head"]


def attach_adapters(base: GPT, meta: dict[str, Any], adapter: dict[str, Tensor]) -> GPT:
    """A LoRA run's model from its base run's: grown to the chat vocabulary, the adapters
    added, loaded and merged (`gpt.runs.load_run_model` loads the base and calls this)."""
    sft = meta["sft"]
    grow_vocabulary(base, sft["vocab_size"])
    base.config.block_size = max(base.config.block_size, meta["model"]["block_size"])
    lora = LoRAConfig(**sft["lora"])
    apply_lora(base, lora)
    with torch.no_grad():
        for name in new_token_layers(base):
            weight = base.get_parameter(f"{name}.weight")
            rows = adapter.pop(f"{name}.new_rows", None)
            if rows is None and name == "lm_head":  # saved before these rows trained: they
                continue  # kept grow_vocabulary's rows, which it has just made again
            if rows is None:
                raise CheckpointError(f"the adapter lacks {name}.new_rows: is it this run's?")
            weight[sft["base_vocab_size"] :] = rows.to(weight)
    missing = set(lora_state_dict(base)) - set(adapter)
    if missing:
        raise CheckpointError(f"the adapter lacks {sorted(missing)[:3]}: is it this run's?")
    base.load_state_dict(adapter, strict=False)
    merge_lora(base)
    return base.eval()
