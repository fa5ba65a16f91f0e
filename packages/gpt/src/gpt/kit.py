"""The gpt stage's task for `training_kit`: the same `LMTask`, model and optimizer as `gpt train`.

`training_task(argv)` reads `gpt train`'s own options (`--model.n_layer=2 --batch_size=16
--max_steps=200 ...`), prepares the text and the tokenizer exactly as `train` does, and hands
back everything another loop needs (see `shared.tasks`). Checkpoints written through
`checkpoint_meta` are gpt checkpoints: `uv run --package gpt sample --run RUN` reads a model
trained with DDP, FSDP or ZeRO-3 like any other.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from gpt.data import TokenData, load_training_text, make_tokenizer, tokenizer_reference
from gpt.train import LMTask, TrainConfig, lr_factor, make_optimizer
from shared.config import config_to_dict, parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`gpt train`'s task from `gpt train`'s options (those about the loop itself are ignored:
    `--compile`, `--resume` and the final sample belong to the stage's own command)."""
    cfg = parse_config(TrainConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `gpt train`; training_kit has its own --resume")
    splits, dataset, note = load_training_text(cfg.dataset, cfg.text_file)
    if cfg.text_file is None:
        cfg.dataset = dataset  # the config saved with the run says what really runs
    tok = make_tokenizer(cfg.tokenizer, splits["train"] + splits["val"], cfg.bpe_vocab_size)
    data = TokenData.from_text(splits, tok)
    # fp32 attention kernels whatever this machine's verdict: the kit picks precision itself.
    model_cfg = cfg.model.gpt_config(tok.vocab_size, "cpu", "fp32")
    task = LMTask(data, model_cfg, cfg.batch_size, cfg.eval_iters, eval_seed=cfg.seed + 1)

    def checkpoint_meta() -> dict[str, Any]:
        return {
            "config": config_to_dict(cfg),
            "model": asdict(model_cfg),
            "tokenizer": tokenizer_reference(tok),
            "dataset": dataset,
        }

    def write_run_files(folder: Path) -> None:
        tok.save(folder / "tokenizer")  # where `gpt sample` looks for it

    def shard_units(model: torch.nn.Module) -> list[torch.nn.Module]:
        return list(model.blocks)  # one FSDP unit per transformer block, the rest at the root

    description = (
        f"gpt on {dataset}: {len(data.train):,} train tokens ({tok.kind} tokenizer, "
        f"vocabulary {tok.vocab_size}); {model_cfg.n_layer} layers x {model_cfg.n_embd}"
    )
    return TrainingTask(
        stage="gpt",
        config=cfg,
        task=task,
        build_model=task.build_model,
        build_optimizer=lambda model: make_optimizer(model, cfg),
        schedule=lambda step, elapsed, seconds: lr_factor(cfg, step, elapsed, seconds),
        checkpoint_meta=checkpoint_meta,
        write_run_files=write_run_files,
        shard_units=shard_units,
        grad_clip=cfg.grad_clip,
        item_name="tok",
        description=description + (f" ({note})" if note else ""),
    )
