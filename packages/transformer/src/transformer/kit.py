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

from shared.config import parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask
from transformer import classify, translate_task


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`transformer train`'s classifier task, for training_kit."""
    cfg = parse_config(classify.ClassifyConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `transformer train`; training_kit has its own")
    return classify.prepare(cfg)


def translation_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`transformer train --task translation`'s task: Multi30k de->en (or your pair files), the
    vocabularies built from the training pairs, greedy validation BLEU in its evaluation."""
    cfg = parse_config(translate_task.TranslationConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `transformer train`; training_kit has its own")
    return translate_task.prepare(cfg)
