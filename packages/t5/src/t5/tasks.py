"""Tasks as text: every task is (input text, target text), told apart by a prefix.

    translate_de_en   "translate German to English: Zwei Hunde spielen." -> "Two dogs play."
    sst2              "sst2 sentence: a gripping film"                    -> "positive"

T5's one idea: if every task reads text and writes text, one model, one loss and one decoding
loop serve them all, and the prefix is how the model knows which task it is doing. So a task
here is only a prefix, a way to turn its dataset's rows into (input, target) strings, and a
metric: BLEU (sacrebleu) for translation, exact-match accuracy for a label written as a word.

Splits. `train` is what fine-tuning draws from (a slice of it is held out to choose the kept
checkpoint); `report` is the split the README's figures come from and that nothing is chosen
on: Multi30k's test_2016_flickr, GLUE's SST-2 dev set (`validation`; its test labels are
hidden).

Your own task: `--data_dir DIR` reads `DIR/<task>.train.tsv` and `DIR/<task>.test.tsv`, lines
`input<TAB>target` with the prefix already written in the input ("reverse: a b c<TAB>c b a");
such a task is scored by exact match. The tests train on tasks made this way.

Mixing: `mixing_rates` follows T5's "examples-proportional mixing": a task is drawn in
proportion to its size, but no task counts for more than `cap` examples, so SST-2's 64k rows do
not drown Multi30k's 29k; or the rates are given outright (`--rates 0.7,0.3`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import UsageError

Example = tuple[str, str]  # (input text with its prefix, target text)


@dataclass(frozen=True)
class TextTask:
    name: str
    prefix: str  # what every input starts with, colon included: "sst2 sentence:"
    metric: str  # "bleu" or "accuracy" (exact match of the decoded text)
    labels: tuple[str, ...] = ()  # the target words of a classification task
    report_split: str = "test"  # the name of the split the figures come from


TASKS: dict[str, TextTask] = {
    "translate_de_en": TextTask(
        "translate_de_en",
        "translate German to English:",
        "bleu",
        report_split="Multi30k test_2016_flickr",
    ),  # fmt: skip
    "sst2": TextTask(
        "sst2",
        "sst2 sentence:",
        "accuracy",
        ("negative", "positive"),
        report_split="SST-2 validation (GLUE dev)",
    ),  # fmt: skip
}


@dataclass
class TaskData:
    """A task and its rows: `train` (fine-tuning and the held-out selection rows), `report`."""

    task: TextTask
    train: list[Example]
    report: list[Example]


def get_task(name: str, data_dir: Path | None = None) -> TextTask:
    """The registered task, or with `data_dir` a task read from `<data_dir>/<name>.*.tsv`."""
    if data_dir is not None:
        rows = read_examples(Path(data_dir) / f"{name}.train.tsv")
        return TextTask(name, common_prefix(rows, f"{data_dir}/{name}.train.tsv"), "accuracy")
    if name not in TASKS:
        raise UsageError(
            f"unknown task {name!r}; choose from {', '.join(TASKS)} (or give --data_dir with "
            f"{name}.train.tsv and {name}.test.tsv)"
        )
    return TASKS[name]


def load_task(name: str, data_dir: Path | None = None) -> TaskData:
    """The task's rows as text: from the dataset registry, or from `data_dir`'s tsv files."""
    task = get_task(name, data_dir)
    if data_dir is not None:
        train = read_examples(Path(data_dir) / f"{name}.train.tsv")
        test = read_examples(Path(data_dir) / f"{name}.test.tsv")
        return TaskData(task, train, test)
    from shared import datasets

    if name == "translate_de_en":
        splits = datasets.load("multi30k")

        def pairs(split: dict) -> list[Example]:
            return [(f"{task.prefix} {de}", en)
                    for de, en in zip(split["de"], split["en"], strict=True)]  # fmt: skip

        return TaskData(task, pairs(splits["train"]), pairs(splits["test_2016_flickr"]))
    splits = datasets.load("sst2")

    def rows(split: Any) -> list[Example]:
        return [(f"{task.prefix} {s}", task.labels[int(y)])
                for s, y in zip(split["sentence"], split["label"], strict=True)]  # fmt: skip

    return TaskData(task, rows(splits["train"]), rows(splits["validation"]))


def pretraining_text(names: Sequence[str]) -> list[str]:
    """Plain sentences for span corruption: Multi30k's training English and German, SST-2's
    training sentences; never a split any figure is reported on."""
    from shared import datasets

    texts: list[str] = []
    for name in names:
        if name == "multi30k":
            train = datasets.load("multi30k")["train"]
            texts += list(train["en"]) + list(train["de"])
        elif name == "sst2":
            texts += list(datasets.load("sst2")["train"]["sentence"])
        else:
            raise UsageError(f"--datasets: {name!r} is not a text this command knows; use "
                             "multi30k or sst2 (or --text_file)")  # fmt: skip
    return texts


def read_examples(path: Path) -> list[Example]:
    """`input<TAB>target` lines; blank lines skipped."""
    if not path.is_file():
        raise UsageError(f"{path} does not exist; a --data_dir task needs NAME.train.tsv and "
                         "NAME.test.tsv with input<TAB>target lines")  # fmt: skip
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        source, tab, target = line.partition("\t")
        if not tab:
            raise UsageError(f"{path}:{number} is not `input<TAB>target`: {line[:60]!r}")
        rows.append((source, target))
    if not rows:
        raise UsageError(f"{path} has no rows")
    return rows


def common_prefix(rows: Sequence[Example], source: str) -> str:
    """The prefix every input starts with: the text up to and including its first colon."""
    prefixes = {s.split(":", 1)[0] + ":" if ":" in s else "" for s, _ in rows}
    if len(prefixes) != 1 or "" in prefixes:
        raise UsageError(f"{source}: every input must start with the same task prefix "
                         f"('name: ...'); found {sorted(prefixes)[:3]}")  # fmt: skip
    return prefixes.pop()


def task_of(text: str, tasks: Sequence[TextTask]) -> TextTask:
    """Which of `tasks` an input belongs to, by its prefix; one clear line if none."""
    for task in tasks:
        if text.startswith(task.prefix):
            return task
    known = "; ".join(f"'{t.prefix} ...'" for t in tasks)
    seen = text.split(":", 1)[0] + ":" if ":" in text else text[:30]
    raise UsageError(f"the input starts with {seen!r}, a task this model was not trained on; "
                     f"it knows {known}")  # fmt: skip


def mixing_rates(sizes: Sequence[int], rates: Sequence[float] = (), cap: int = 0) -> list[float]:
    """Each task's share of the batches: `rates` normalised, else sizes capped at `cap`."""
    if rates:
        if len(rates) != len(sizes):
            raise UsageError(f"--rates gives {len(rates)} numbers for {len(sizes)} tasks")
        if any(r < 0 for r in rates) or sum(rates) <= 0:
            raise UsageError(f"--rates must be >= 0 with a positive sum, got {list(rates)}")
        weights = list(rates)
    else:
        weights = [min(n, cap) if cap else n for n in sizes]
    total = sum(weights)
    return [w / total for w in weights]
