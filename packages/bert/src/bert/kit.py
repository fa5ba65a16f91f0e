"""bert's fine-tuning as a task for `training_kit` (`--task bert_finetune`).

`training_task(argv)` reads `bert finetune`'s own options (`--task sst2 --init minilm`, ...),
prepares the model from `--init`, the tokenizer and the tokenized splits exactly as `finetune`
does, and hands over `ClassificationTask`, the same AdamW groups and the same schedule. Every
process builds its model as a copy of the one prepared here (the same pretrained weights and
the same fresh classifier head). What `finetune` adds on top (keeping the best model in
`<run>/model/` for `bert eval`, patience) stays in the stage's own command; the kit's
checkpoints hold the weights in bert's own names, with the config beside them.
"""

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bert.finetune import (
    ClassificationTask,
    FinetuneConfig,
    make_optimizer,
    prepare,
    set_dropout,
)
from shared.config import config_to_dict, parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask
from shared.training import lr_factor


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    cfg = parse_config(FinetuneConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `bert finetune`; training_kit has its own")
    ready = prepare(cfg)
    model = ready.model
    set_dropout(model, cfg.dropout)
    if cfg.freeze_embeddings and cfg.init != "none":
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    job = ClassificationTask(cfg, ready.task, ready.splits, ready.tokenizer.pad_id)

    def checkpoint_meta() -> dict[str, Any]:
        return {"config": config_to_dict(cfg), "bert_config": asdict(model.config)}

    def write_run_files(folder: Path) -> None:
        ready.tokenizer.save(folder / "tokenizer")

    def shard_units(module: torch.nn.Module) -> list[torch.nn.Module]:
        return list(module.bert.layers)  # one FSDP unit per encoder layer

    return TrainingTask(
        stage="bert",
        config=cfg,
        task=job,
        build_model=lambda: copy.deepcopy(model),
        build_optimizer=lambda module: make_optimizer(module, cfg),
        schedule=lambda step, elapsed, seconds: lr_factor(
            step,
            elapsed,
            warmup_steps=cfg.warmup_steps,
            max_steps=cfg.max_steps,
            seconds=seconds,
            decay=cfg.decay,
        ),  # fmt: skip
        checkpoint_meta=checkpoint_meta,
        write_run_files=write_run_files,
        shard_units=shard_units,
        grad_clip=cfg.grad_clip,
        item_name="sent",
        description=f"bert on {ready.task.name} from {cfg.init}",
    )
