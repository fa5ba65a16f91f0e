"""What `pretrain` and `finetune` share: the model's size options, batches of id rows, the
optimizer, and reading a finished run back.

    ModelSize -> T5Config (with the tokenizer's vocabulary size)
    collate(inputs, targets) -> input_ids (B, S), attention_mask (B, S), labels (B, T) with
                                -100 on padding, decoder_input_ids = shift_right(labels) (B, T)
    check_config(checkpoint)    refuse a checkpoint of another model config, by name
    load_run_model(run)         config, weights and tokenizer of a finished run

A run folder holds `tokenizer/` (the T5Tokenizer) and `checkpoints/`, written by
`shared.trainer` in its one layout (the loop's state and every RNG, for an exact `--resume`);
t5's part of every checkpoint's meta.json is the T5Config it was trained with ("t5_config"),
so a run can be read back without its command's options, and a checkpoint that does not fit
the config it claims is refused by name.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from shared.checkpoint import load_checkpoint, read_meta
from shared.config import option
from shared.errors import CheckpointError, UsageError
from shared.training import lr_factor
from t5.model import T5, T5Config, shift_right
from t5.tokenizer import T5Tokenizer


@dataclass
class ModelSize:
    """The network. The defaults are a small T5 1.0 (ReLU, tied embeddings) for CPU training:
    about 9.5M weights with an 8k vocabulary, near the transformer stage's Multi30k model."""

    d_model: int = option(256, "width of the residual stream", ge=8)
    d_kv: int = option(64, "width of one attention head", ge=4)
    d_ff: int = option(1024, "feed-forward inner width", ge=8)
    num_layers: int = option(3, "encoder layers", ge=1)
    num_decoder_layers: int = option(3, "decoder layers", ge=1)
    num_heads: int = option(4, "attention heads", ge=1)
    feed_forward_proj: Literal["relu", "gated-gelu"] = option(
        "relu", "relu (T5 1.0) or gated-gelu (T5 1.1)"
    )
    dropout: float = option(0.1, "dropout on every residual branch and attention", ge=0, lt=1)


def make_config(size: ModelSize, vocab_size: int) -> T5Config:
    return T5Config(
        vocab_size=vocab_size, d_model=size.d_model, d_kv=size.d_kv, d_ff=size.d_ff,
        num_layers=size.num_layers, num_decoder_layers=size.num_decoder_layers,
        num_heads=size.num_heads, feed_forward_proj=size.feed_forward_proj,
        dropout_rate=size.dropout,
    )  # fmt: skip


def config_from_meta(meta: dict[str, Any], source: str) -> T5Config:
    if "t5_config" not in meta:
        raise CheckpointError(f"{source} has no t5_config in its meta.json: not a t5 checkpoint")
    return T5Config(**meta["t5_config"])


def set_dropout(model: T5, p: float) -> None:
    """Change every dropout of a built model (a fine-tuning run may differ from pretraining)."""
    model.config.dropout_rate = p
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        elif hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = p


# ----------------------------------------------------------------------------------------------
# Batches


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    """Right-pad id lists: (B, longest)."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


def collate(inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> dict[str, Tensor]:
    """Teacher forcing for a batch of (input ids, target ids), both ending in EOS."""
    input_ids = pad_rows(inputs, 0)  # (B, S)
    labels = pad_rows(targets, -100)  # (B, T) padding is ignored by the loss
    return {
        "input_ids": input_ids,
        "attention_mask": (pad_rows([[1] * len(r) for r in inputs], 0)),  # (B, S)
        "labels": labels,
        "decoder_input_ids": shift_right(labels),  # (B, T): start token, then labels[:-1]
    }


def count_targets(batch: dict[str, Tensor]) -> int:
    return int((batch["labels"] != -100).sum())


# ----------------------------------------------------------------------------------------------
# Optimizer and weights


OptimizerName = Literal["adamw", "adafactor"]


def make_optimizer(model: T5, lr: float, weight_decay: float,
                   kind: OptimizerName = "adamw") -> torch.optim.Optimizer:  # fmt: skip
    """AdamW or Adafactor; decay on the weight matrices only (norms, position biases and the
    embedding matrix keep their scale: the tied output reads the embeddings too).

    Why Adafactor is T5's optimizer: its step is relative to each tensor's size (the rate times
    the tensor's RMS). T5 initialises the shared embeddings with std 1 and the matrices with
    std d**-0.5; AdamW's step is the same absolute size for both, so at a rate that suits the
    matrices the embeddings hardly move. Adafactor moves each by the same fraction.
    """
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.dim() < 2 or name.startswith("shared") or "relative_attention_bias" in name
        (plain if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": plain, "weight_decay": 0.0}]  # fmt: skip
    if kind == "adafactor":
        optimizer = torch.optim.Adafactor(groups, lr=lr)
    elif kind == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-8)
    else:
        raise ValueError(f"optimizer must be adamw or adafactor, not {kind!r}")
    for group in optimizer.param_groups:
        group["peak_lr"] = lr
    return optimizer


def load_weights(model: T5, folder: Path) -> dict[str, Any]:
    """Weights of a checkpoint into `model`, refused by name if they do not fit; its meta."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(folder, expected, framework="torch")
    model.load_state_dict(checkpoint.model)
    return checkpoint.meta


def check_config(folder: Path, config: T5Config) -> None:
    """Refuse a checkpoint saved with another model config before touching its tensors."""
    saved = config_from_meta(read_meta(folder), str(folder))
    if saved != config:
        changed = [f"{k} {getattr(saved, k)} -> {getattr(config, k)}"
                   for k in dataclasses.asdict(config)
                   if k != "dropout_rate" and getattr(saved, k) != getattr(config, k)]  # fmt: skip
        if changed:
            raise CheckpointError(
                f"{folder} was saved with another model config ({', '.join(changed[:3])}); "
                "resume with the run's own model options"
            )


# ----------------------------------------------------------------------------------------------
# Finished runs


def run_tokenizer(run_folder: Path) -> T5Tokenizer:
    folder = run_folder / "tokenizer"
    if not (folder / "t5_tokenizer.json").is_file():
        raise UsageError(f"{run_folder} has no tokenizer/: is it a t5 pretrain or finetune run?")
    return T5Tokenizer.load(folder)


def kept_checkpoint(run_folder: Path) -> Path:
    """The checkpoint a finished run stands for: `best` (chosen on held-out training rows),
    else `final`, else the interrupted one."""
    for name in ("best", "final", "interrupted"):
        folder = run_folder / "checkpoints" / name
        if (folder / "meta.json").is_file():
            return folder
    raise UsageError(f"{run_folder} has no best, final or interrupted checkpoint yet")


def load_run_model(run_folder: Path, device: Any = "cpu") -> tuple[T5, T5Tokenizer, Path]:
    """(model in eval mode, tokenizer, checkpoint folder) of a finished run."""
    tokenizer = run_tokenizer(run_folder)
    folder = kept_checkpoint(run_folder)
    config = config_from_meta(read_meta(folder), str(folder))
    if config.vocab_size != tokenizer.vocab_size:
        raise CheckpointError(f"{folder} has a vocabulary of {config.vocab_size} but "
                              f"{run_folder}/tokenizer has {tokenizer.vocab_size}")  # fmt: skip
    model = T5(config)
    load_weights(model, folder)
    return model.to(device).eval(), tokenizer, folder


class T5Run:
    """What t5's two training commands declare alike to `shared.trainer` (`PretrainRun` and
    `FinetuneRun` inherit it): the tokenizer beside the checkpoints, the model config checked
    before a resume, the schedule, and the time kept for the preparation and the final
    evaluation. Its subclasses are dataclasses with `cfg`, `tokenizer`, `config`, `task` and
    `prep_seconds`."""

    cfg: Any
    tokenizer: T5Tokenizer
    config: T5Config
    task: Any  # with `eval_seconds`, the final evaluation's predicted time
    prep_seconds: float

    def write_run_files(self, folder: Path) -> None:
        self.tokenizer.save(folder / "tokenizer")  # what --resume and --init read back

    def check_resume(self, resume: Any) -> None:  # a shared.trainer.Resume
        check_config(resume.checkpoint, self.config)

    def schedule(self, step: int, elapsed: float, seconds: float | None) -> float:
        cfg = self.cfg
        return lr_factor(step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
                         seconds=seconds, decay=cfg.decay, min_ratio=cfg.min_lr_ratio)  # fmt: skip

    def reserve_seconds(self, state: Any) -> float:  # a shared.fit.FitState
        return self.prep_seconds + self.task.eval_seconds
