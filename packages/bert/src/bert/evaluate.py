"""`bert eval`: score a fine-tuned run on its task's dev set, or on any labelled tsv file.

Prints the task's GLUE metrics, then (for a classification task) accuracy and F1, the
confusion matrix and the mistakes the model was surest of. Those mistakes are the error
analysis: on SST-2 they are mostly negations ("not bad at all"), contrasts ("..., but ...")
and sarcasm, which is where a sentence's words and its meaning part ways.
"""

from typing import Any

import torch

from bert.finetune import Rows, predict, tokenize_split
from bert.glue import compute_metrics, get_task, load_task, read_labelled_tsv
from bert.hf import load_folder
from bert.report import classification_report, plot_confusion
from bert.tokenize import BertTokenizer
from shared.device import pick_device
from shared.errors import UsageError
from shared.runs import Run


def evaluate_run(run: Run, cfg: Any) -> dict[str, float]:
    trained = run.config_dict()
    task = get_task(cfg.task or trained.get("task", "sst2"))
    folder = run.folder / "model"
    if not (folder / "model.safetensors").is_file():
        raise UsageError(f"{run.folder} has no model/ yet: is it a finished bert finetune run?")
    tokenizer = BertTokenizer.from_folder(folder)
    model = load_folder(folder, "BertForSequenceClassification")
    if model.config.num_labels != task.num_labels:
        raise UsageError(f"{folder} predicts {model.config.num_labels} labels; task "
                         f"{task.name} has {task.num_labels}")  # fmt: skip
    if cfg.file is not None:
        columns, source = read_labelled_tsv(cfg.file, task), str(cfg.file)
    else:
        columns, source = load_task(task)[task.eval_split], f"{task.name} {task.eval_split}"
    max_length = int(trained.get("max_length", 128))
    rows: Rows = tokenize_split(columns, task, tokenizer, max_length)
    model.to(pick_device(cfg.device))
    logits, _ = predict(model, rows, cfg.batch_size, tokenizer.pad_id)  # (N, C)
    labels = rows.labels
    metrics = compute_metrics(task, logits.squeeze(-1) if task.is_regression else logits,
                              labels)  # fmt: skip
    print(f"run: {run.folder}")
    print(f"{source}: {len(labels)} rows; " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if not task.is_regression:
        texts = [" [SEP] ".join(str(columns[c][i]) for c in task.text_columns)
                 for i in range(len(labels))]  # fmt: skip
        probabilities = torch.softmax(logits, dim=-1).numpy()
        report = classification_report(texts, [int(y) for y in labels], probabilities,
                                       label_names=task.label_names, k=cfg.mistakes)  # fmt: skip
        print(report.text())
        title = source if cfg.file is None else f"{task.name}: {source}"
        png = plot_confusion(report.confusion, report.label_names,
                             run.folder / f"confusion_{task.name}.png", title=title)  # fmt: skip
        print(f"wrote {png}")
        metrics = {**metrics, "f1": report.f1, "accuracy": report.accuracy}
    return metrics
