"""bert's fine-tuning as a task for `training_kit` (`--task bert_finetune`).

`training_task(argv)` reads `bert finetune`'s own options (`--task sst2 --init minilm`, ...) and
returns the task `bert.finetune.prepare` declares for `bert finetune` itself: the one
preparation (the vocabulary and config from `--init`, the tokenized splits), the same
`ClassificationTask`, AdamW groups and schedule. Every process builds its model with the task's
`build_model`, seeded alike, so all start from the same pretrained weights and the same fresh
head. What `bert finetune` adds (keeping the best model in `<run>/model/` for `bert eval`,
patience) is read by `shared.trainer` only; the kit's checkpoints hold the weights in bert's
own names, with the config beside them.
"""

from bert.finetune import FinetuneConfig, prepare
from shared.tasks import TrainingTask, prepared_task


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`bert finetune`'s task from its options, for training_kit (--resume is the command's)."""
    return prepared_task(FinetuneConfig, prepare, argv, prog, "bert finetune")
