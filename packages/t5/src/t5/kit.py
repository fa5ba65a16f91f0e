"""t5's fine-tuning as a task for `training_kit` (`--task t5_finetune`).

`training_task(argv)` reads `t5 finetune`'s own options (`--tasks translate_de_en,sst2
--init RUN ...`) and returns the task `t5.finetune.prepare` declares for `t5 finetune` itself:
the tasks' rows, the tokenizer (a pretrain run's, or one trained on the tasks' training text),
the model factory and the mixture of batches (`TextToTextTask`). The kit's checkpoints are t5
checkpoints with the meta `t5 eval` and `t5 generate` read, and the run folder gets the
tokenizer: `t5 eval --run RUN` scores a model trained with DDP or ZeRO-3 like any other.

Every process prepares the task itself, so with `--init none` each trains the tokenizer on the
same text with the same settings; SentencePiece's training is deterministic, and the strategy
tests (one process against two) would fail if it were not. What `finetune` adds on top of the
loop (keeping the best checkpoint on the selection rows, patience) is read by `shared.trainer`
only; here `final` is the model, and the selection scores are logged at each evaluation.

Adafactor, t5's default optimizer, keeps its second moment as a row and a column per matrix
and scales each step by the tensor's RMS: both need whole matrices. DDP keeps them whole; the
sharding strategies do not, so they ask for `--optimizer adamw`.
"""

from shared.tasks import TrainingTask, prepared_task
from t5.finetune import FinetuneConfig, prepare


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`t5 finetune`'s task from its options, for training_kit (--resume is the command's)."""
    return prepared_task(FinetuneConfig, prepare, argv, prog, "t5 finetune")
