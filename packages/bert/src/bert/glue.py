"""The GLUE benchmark as a table: each task's columns, labels and the metrics it is judged by.

GLUE (Wang et al. 2018) is nine English sentence tasks that a single pretrained encoder is
fine-tuned on one at a time. They differ in three ways only, so one row of a table describes
each: one sentence or a pair (the pair is fed as [CLS] a [SEP] b [SEP], segments 0 and 1), the
number of labels (1 means regression: STS-B's similarity score from 0 to 5), and the metric.

Why not accuracy everywhere? Accuracy misleads when the classes are unbalanced: CoLA is 70%
acceptable sentences, so a model that always says "acceptable" scores 70% and has learned
nothing; the Matthews correlation gives it 0. MRPC and QQP have about two thirds of one class
and report F1 of the positive class beside accuracy. STS-B predicts a number, judged by how it
correlates with the human scores: Pearson (linear) and Spearman (rank order only).

The metrics are scikit-learn's and scipy's, not written here: a benchmark number is only
comparable with the literature if it is computed the way everyone else computes it.

A task is usable once its data is in the dataset registry (`shared.datasets`); today only
SST-2 is. The others fail with a clear message, and `read_labelled_tsv` reads any task's rows
from a plain tsv file so that an evaluation needs no registry entry at all.

    task = get_task("sst2")
    compute_metrics(task, predictions=[1, 0, 1], labels=[1, 1, 1])  # {"accuracy": 0.667}
"""

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import UsageError


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: what a row looks like and how predictions are judged."""

    name: str
    text_columns: tuple[str, ...]  # one sentence, or a pair fed as two segments
    label_column: str
    num_labels: int  # classes; 1 means regression (a real-valued score)
    metrics: tuple[str, ...]  # the first is the one to select checkpoints by
    dataset: str | None  # its name in shared.datasets' registry; None: not there yet
    label_names: tuple[str, ...] = ()  # for reports: label id -> word (empty for regression)
    eval_split: str = "validation"  # the split GLUE's dev numbers come from

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def main_metric(self) -> str:
        return self.metrics[0]


_PAIR = ("sentence1", "sentence2")
# Columns and label names as in the `glue` dataset on the Hugging Face hub.
TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        GlueTask("cola", ("sentence",), "label", 2, ("matthews",), None,
                 ("unacceptable", "acceptable")),
        GlueTask("sst2", ("sentence",), "label", 2, ("accuracy",), "sst2",
                 ("negative", "positive")),
        GlueTask("mrpc", _PAIR, "label", 2, ("f1", "accuracy"), None,
                 ("not_equivalent", "equivalent")),
        GlueTask("qqp", ("question1", "question2"), "label", 2, ("f1", "accuracy"), None,
                 ("not_duplicate", "duplicate")),
        GlueTask("stsb", _PAIR, "label", 1, ("pearson", "spearman"), None),
        GlueTask("mnli", ("premise", "hypothesis"), "label", 3, ("accuracy",), None,
                 ("entailment", "neutral", "contradiction"), eval_split="validation_matched"),
        GlueTask("qnli", ("question", "sentence"), "label", 2, ("accuracy",), None,
                 ("entailment", "not_entailment")),
        GlueTask("rte", _PAIR, "label", 2, ("accuracy",), None,
                 ("entailment", "not_entailment")),
        GlueTask("wnli", _PAIR, "label", 2, ("accuracy",), None,
                 ("not_entailment", "entailment")),
    )
}  # fmt: skip


def get_task(name: str) -> GlueTask:
    """The task called `name` (any case); a UsageError listing the known names otherwise."""
    key = name.strip().lower().replace("-", "")  # "SST-2" and "sst2" are the same task
    if key not in TASKS:
        raise UsageError(f"task {name!r} is not in the GLUE table; known: {', '.join(TASKS)}")
    return TASKS[key]


def registry_dataset(task: GlueTask) -> str:
    """The registry name of the task's data, or a UsageError saying it is not there yet."""
    from shared.datasets import REGISTRY

    if task.dataset is None or task.dataset not in REGISTRY:
        have = ", ".join(t.name for t in TASKS.values() if t.dataset in REGISTRY)
        raise UsageError(
            f"task {task.name!r} has no dataset in the registry yet (tasks with data: {have}); "
            f"add it to shared/datasets.py, or evaluate a tsv file of "
            f"{'<TAB>'.join((*task.text_columns, task.label_column))} rows with --file"
        )
    return task.dataset


def load_task(task: GlueTask, dataset: str | None = None) -> dict[str, Any]:
    """The task's splits (`datasets.Dataset`s with the task's columns): from the registry, or
    from a source (`csv:FILE`, `jsonl:DIR`, `hf:ID`: shared.sources) whose rows have the task's
    columns; its validation split (else its last 10%) becomes the task's evaluation split."""
    if dataset is None:
        from shared.datasets import load

        return load(registry_dataset(task))
    from shared import sources

    labels = None if task.is_regression else range(task.num_labels)
    rows = sources.load_source(dataset, [*task.text_columns, task.label_column], labels=labels,
                               label_field=task.label_column)  # fmt: skip
    splits, eval_name = sources.with_eval_split(rows)
    return {"train": splits["train"], task.eval_split: splits[eval_name]}


# --- metrics ---------------------------------------------------------------------------------


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, predictions))


def _f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class (label 1): GLUE's F1 for MRPC and QQP."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0))


def _matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, predictions))


def _correlation(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(predictions: np.ndarray, labels: np.ndarray) -> float:
        from scipy import stats

        function = stats.pearsonr if kind == "pearson" else stats.spearmanr
        with warnings.catch_warnings():  # constant predictions give nan; no warning beside it
            warnings.simplefilter("ignore")
            return float(function(predictions, labels)[0])

    metric.__name__ = kind
    return metric


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "matthews": _matthews,
    "pearson": _correlation("pearson"),
    "spearman": _correlation("spearman"),
}


def compute_metrics(task: GlueTask, predictions, labels) -> dict[str, float]:
    """The task's metrics, e.g. {"f1": 0.88, "accuracy": 0.84} for MRPC.

    predictions: class ids (N,), or scores (N, C) whose argmax is taken; for a regression task,
    the predicted values (N,) or (N, 1). labels: (N,). Lists, numpy arrays or CPU tensors.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if task.is_regression:
        predictions = predictions.reshape(len(predictions), -1)[:, 0].astype(np.float64)  # (N,)
        labels = labels.astype(np.float64)
    elif predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)  # (N, C) -> (N,)
    if predictions.shape != labels.shape:
        raise ValueError(
            f"{len(predictions)} predictions of shape {predictions.shape} for "
            f"{len(labels)} labels of shape {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("no predictions to score")
    return {name: METRICS[name](predictions, labels) for name in task.metrics}


# --- tsv files -------------------------------------------------------------------------------


def _parse_label(text: str, task: GlueTask) -> int | float | None:
    """The label in `text`, or None when it is not a valid label for the task."""
    try:
        if task.is_regression:
            value = float(text)
            return value if np.isfinite(value) else None
        label = int(text)
    except ValueError:
        return None
    return label if 0 <= label < task.num_labels else None


def read_labelled_tsv(path: str | Path, task: GlueTask) -> dict[str, list]:
    """Rows of `sentence<TAB>label` (or `sentence1<TAB>sentence2<TAB>label` for a pair task).

    Returns columns named as the task's dataset names them, e.g. {"sentence": [...],
    "label": [...]}, ready for `datasets.Dataset.from_dict`. A first line whose last field is
    the label column's name ("label") is a header and skipped; blank lines are skipped. Any
    other line that is not a row of the task raises a UsageError naming the file and line.
    """
    path = Path(path)
    n_fields = len(task.text_columns) + 1
    shape = "<TAB>".join((*task.text_columns, task.label_column))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path} as UTF-8 text: {error}") from None

    columns: dict[str, list] = {name: [] for name in (*task.text_columns, task.label_column)}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and fields[-1].strip().lower() == task.label_column:
            continue  # a header
        label = _parse_label(fields[-1].strip(), task) if len(fields) == n_fields else None
        texts = [f.strip() for f in fields[:-1]]
        if label is None or not all(texts):
            if len(fields) != n_fields:
                why = f"{len(fields)} tab-separated fields, expected {n_fields}"
            elif label is None:
                wanted = "a number" if task.is_regression else f"0..{task.num_labels - 1}"
                why = f"label {fields[-1].strip()!r} is not {wanted}"
            else:
                why = "an empty sentence"
            raise UsageError(f"{path}:{number}: not a `{shape}` row ({why}): {line[:60]!r}")
        for name, text in zip(task.text_columns, texts, strict=True):
            columns[name].append(text)
        columns[task.label_column].append(label)
    if not columns[task.label_column]:
        raise UsageError(f"{path} has no `{shape}` rows")
    return columns


def task_texts(task: GlueTask, columns: dict[str, Sequence]) -> list[tuple[str, ...]]:
    """Each row's text fields as a tuple: (sentence,) or (first, second) for a pair task."""
    return list(zip(*(columns[name] for name in task.text_columns), strict=True))
