"""t5's fine-tuning as a task for `training_kit` (`--task t5_finetune`).

`training_task(argv)` reads `t5 finetune`'s own options (`--tasks translate_de_en,sst2
--init RUN ...`) and prepares exactly what `finetune` prepares: the tasks' rows, the tokenizer
(a pretrain run's, or one trained on the tasks' training text), the model and its mixture of
batches (`TextToTextTask`). The kit's checkpoints are t5 checkpoints with the meta `t5 eval`
and `t5 generate` read, and the run folder gets the tokenizer: `t5 eval --run RUN` scores a
model trained with DDP or ZeRO-3 like any other.

Every process prepares the task itself, so with `--init none` each trains the tokenizer on the
same text with the same settings; SentencePiece's training is deterministic, and the strategy
tests (one process against two) would fail if it were not. What `finetune` adds on top of the
loop (keeping the best checkpoint on the selection rows, patience) stays in the stage's own
command; here `final` is the model, and the selection scores are logged at each evaluation.

Adafactor, t5's default optimizer, keeps its second moment as a row and a column per matrix
and scales each step by the tensor's RMS: both need whole matrices. DDP keeps them whole; the
sharding strategies do not, so they ask for `--optimizer adamw`.
"""

import copy
import dataclasses
from typing import Any

import torch

from shared.config import config_to_dict, parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask
from shared.training import lr_factor
from t5.finetune import FinetuneConfig, TextToTextTask, prepare
from t5.training import make_optimizer, set_dropout


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    cfg = parse_config(FinetuneConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `t5 finetune`; training_kit has its own --resume")
    ready = prepare(cfg)
    model = ready.model
    set_dropout(model, cfg.model.dropout)
    job = TextToTextTask(cfg, ready.tokenizer, ready.train, ready.select, ready.rates)

    def checkpoint_meta() -> dict[str, Any]:
        return {
            "config": config_to_dict(cfg),
            "t5_config": dataclasses.asdict(model.config),
            "kind": "finetune",
            "tasks": [r.task.name for r in ready.train],
            "prefixes": [r.task.prefix for r in ready.train],
            "longest_targets": [r.longest_target for r in ready.train],
        }

    def shard_units(module: torch.nn.Module) -> list[torch.nn.Module]:
        # One FSDP unit per stack, not per block: a stack computes its position bias with its
        # first block's table before running the blocks, outside that block's forward.
        return [module.encoder, module.decoder]

    names = " + ".join(f"{r.task.name} {p:.2f}" for r, p in zip(ready.train, ready.rates,
                                                                 strict=True))  # fmt: skip
    return TrainingTask(
        stage="t5",
        config=cfg,
        task=job,
        build_model=lambda: copy.deepcopy(model),
        build_optimizer=lambda module: make_optimizer(
            module, cfg.lr, cfg.weight_decay, cfg.optimizer
        ),
        schedule=lambda step, elapsed, seconds: lr_factor(
            step,
            elapsed,
            warmup_steps=cfg.warmup_steps,
            max_steps=cfg.max_steps,
            seconds=seconds,
            decay=cfg.decay,
            min_ratio=cfg.min_lr_ratio,
        ),  # fmt: skip
        checkpoint_meta=checkpoint_meta,
        write_run_files=lambda folder: ready.tokenizer.save(folder / "tokenizer"),
        shard_units=shard_units,
        grad_clip=cfg.grad_clip,
        item_name="tok",
        description=f"t5 from {cfg.init} on {names} ({model.num_parameters() / 1e6:.1f}M weights)",
    )
