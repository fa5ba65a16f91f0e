"""The transformer stage's tasks for `training_kit`: the SST-2 classifier (`--task
transformer_sst2`) and the Multi30k translator (`--task transformer_translate`).

`training_task(argv)` reads `transformer train`'s own options (`--epochs`, `--batch_size`,
`--model.d_model`, ...) and returns what `transformer train` trains: the same `prepare`
(classify.py, translate_task.py) builds the vocabulary, the held-out selection slice, the
datasets, the task, the AdamW groups and the step-based schedule. Its budget is in epochs, so
it gives the kit its step count and evaluates at each epoch's end, as `train` does. What
`train` adds on top (keeping the epoch the selection slice picks, the report) is read by
`shared.trainer` only.
"""

from shared.tasks import TrainingTask, prepared_task
from transformer import classify, translate_task


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`transformer train`'s classifier task, for training_kit."""
    return prepared_task(classify.ClassifyConfig, classify.prepare, argv, prog, "transformer train")


def translation_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`transformer train --task translation`'s task: Multi30k de->en (or your pair files), the
    vocabularies built from the training pairs, greedy validation BLEU in its evaluation."""
    config_cls, prepare = translate_task.TranslationConfig, translate_task.prepare
    return prepared_task(config_cls, prepare, argv, prog, "transformer train")
