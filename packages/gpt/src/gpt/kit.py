"""The gpt task for `training_kit` (the entry point `gpt` in the group `shared.tasks`).

It is `gpt train`'s own task, from `gpt train`'s own options, prepared by the same function
(`gpt.train_run.prepare`): a model trained under DDP, FSDP or ZeRO-3 is a gpt run like any.
"""

from gpt.train import TrainConfig
from gpt.train_run import prepare
from shared.config import parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`gpt train`'s task from `gpt train`'s options, for training_kit (`--compile`,
    `--resume` and the final sample belong to the stage's own command)."""
    cfg = parse_config(TrainConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `gpt train`; training_kit has its own --resume")
    return prepare(cfg)
