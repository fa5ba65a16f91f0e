"""The gpt task for `training_kit` (the entry point `gpt` in the group `shared.tasks`).

It is `gpt train`'s own task, from `gpt train`'s own options, prepared by the same function
(`gpt.train_run.prepare`): a model trained under DDP, FSDP or ZeRO-3 is a gpt run like any.
"""

from gpt.train import TrainConfig
from gpt.train_run import prepare
from shared.tasks import TrainingTask, prepared_task


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`gpt train`'s task from `gpt train`'s options, for training_kit (`--compile`,
    `--resume` and the final sample belong to the stage's own command)."""
    return prepared_task(TrainConfig, prepare, argv, prog, "gpt train")
