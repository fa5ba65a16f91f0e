"""`uv run --package STAGE data-report --dataset ...`: read, check, compare, measure, report.

    uv run --package bert data-report                              # the stage's dataset (sst2)
    uv run --package bert data-report --dataset tsv:datasets_cache/sst2   # the old split
    uv run --package bert data-report --select_rows 872            # + the selection rows
    uv run --package gpt data-report --dataset text:my.txt --write-clean clean.txt

Each stage registers a two-line hook (`<stage>/data_report.py`) that names its dataset and its
tokens (`StageData`); the rest is here, the same for every stage. The dataset is read and
checked before the run folder is made, so a dataset that cannot be read at all stops with one
line and exit code 2, and nothing is written. Faults in the rows are what the report is for:
they are reported, and the exit code stays 0.
"""

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from shared.atomic import write_text_atomic
from shared.config import config_to_dict, option, parse_config
from shared.data_report.checks import Limits, check_table
from shared.data_report.clean import clean_summary, drop_reasons, write_clean
from shared.data_report.figures import length_figure
from shared.data_report.overlap import LeakOptions, LeakReport, find_leaks
from shared.data_report.rows import Row, Table, read_table
from shared.data_report.summary import ReportData, SeriesStats, build_report, format_summary
from shared.data_report.tokens import StageData, Tokens, count_tokens
from shared.errors import UsageError
from shared.runs import Run
from shared.selection import length_matched, phrases_inside, word_count
from shared.sources import SOURCE_HELP

REPORTED_FIRST = ("validation", "val", "dev", "test")  # the split the selection rows imitate


@dataclass
class DataReportConfig:
    dataset: str = option("", f"a registry name (sst2, multi30k, tinyshakespeare, pystdlib) or "
                          f"{SOURCE_HELP}; empty: the stage's, named above")  # fmt: skip
    text_field: list[str] = option([], "the text fields (default: the dataset's; sources: text "
                                   "or sentence, else every field but the label)")  # fmt: skip
    label_field: str = option("auto", "the label field; auto: the dataset's, or 'label' if the "
                              "rows have one; none: no labels")  # fmt: skip
    labels: list[str] = option([], "the labels allowed (default: the dataset's, else train's)")
    min_chars: int = option(3, "a text shorter than this many characters is too short", ge=1)
    max_chars: int = option(1000, "a text longer than this many characters is too long", ge=1)
    min_words: int = option(3, "rows of fewer words repeat by chance: not counted as duplicates "
                            "or leaks", ge=1)  # fmt: skip
    ngram: int = option(8, "the phrase length, in words, that counts as shared with train", ge=2)
    leak_share: float = option(0.05, "call an evaluation split leaky above this share of rows "
                               "overlapping train", gt=0, le=1)  # fmt: skip
    max_imbalance: float = option(4.0, "flag a split whose commonest label outnumbers its "
                                  "rarest more than this", gt=1)  # fmt: skip
    token_rows: int = option(5000, "rows of each split to tokenize (spread evenly; 0: all)", ge=0)
    select_rows: int = option(
        0,
        "also show this many train rows length-matched to the reported "
        "split, as finetune/classify hold out for selection (0: off)",
        ge=0,
    )
    seed: int = option(1337, "the seed of the selection rows' draw (the training run's --seed)")
    write_clean: Path | None = option(None, "write the rows that pass here (a file; a folder "
                                      "for several splits)")  # fmt: skip
    examples: int = option(3, "rows quoted for each kind of finding", ge=0)
    run_name: str | None = option(None, "the report folder's name (default: the time)")


# ----------------------------------------------------------------------------------------------
# Measuring


def _selection(table: Table, cfg: DataReportConfig,
               stage: StageData) -> tuple[str, list[Row], int]:  # fmt: skip
    """(the reported split, the training rows drawn with its lengths, how many training rows
    occur inside them: the stages leave those out of training) for --select_rows."""
    target = next((s for s in REPORTED_FIRST if s in table.splits), None)
    target = target or (table.eval_splits[0] if table.eval_splits else None)
    if target is None:
        raise UsageError(f"--select_rows: {table.name} has no evaluation split to match")
    train = table.splits["train"]
    if cfg.select_rows >= len(train):
        raise UsageError(f"--select_rows {cfg.select_rows} leaves no training rows "
                         f"({len(train):,})")  # fmt: skip
    first = table.text_fields[0]  # as the stages do: the first text carries the length
    texts = table.texts("train", first)
    chosen = length_matched(texts, table.texts(target, first), cfg.select_rows,
                            cfg.seed + stage.select_seed_offset)  # fmt: skip
    return target, [train[i] for i in chosen], len(phrases_inside(texts, chosen))


def _series(table: Table, cfg: DataReportConfig, stage: StageData) -> dict[str, list[Row]]:
    series = dict(table.splits)
    if cfg.select_rows:
        target, rows, inside = _selection(table, cfg, stage)
        series["select"] = rows
        table.notes.append(f"select: {len(rows):,} train rows drawn with {target}'s lengths in "
                           f"words (shared.selection.length_matched, seed "
                           f"{cfg.seed + stage.select_seed_offset}); {inside:,} train rows "
                           "occur inside them, which training leaves out")  # fmt: skip
    return series


Stats = dict[str, dict[str, SeriesStats]]  # series -> text field -> figures


def _measure(table: Table, series: dict[str, list[Row]], stage: StageData,
             token_rows: int) -> tuple[Stats, dict[str, Tokens]]:  # fmt: skip
    """Lengths in characters, words and the stage's tokens, per series and text field."""
    tokens = {name: stage.tokens(name, table.texts("train", name)) for name in table.text_fields}
    stats: Stats = {}
    for label, rows in series.items():
        stats[label] = {}
        for name, tok in tokens.items():
            texts = [row.text(name) for row in rows if row.texts.get(name)]
            stats[label][name] = SeriesStats([len(t) for t in texts],
                                             [word_count(t) for t in texts],
                                             count_tokens(tok, texts, token_rows))  # fmt: skip
    return stats, tokens


def _label_counts(series: dict[str, list[Row]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for label, rows in series.items():
        found: dict[str, int] = {}
        for row in rows:
            if row.label is not None:
                found[row.label] = found.get(row.label, 0) + 1
        if found:
            counts[label] = dict(sorted(found.items()))
    return counts


# ----------------------------------------------------------------------------------------------
# The command


def held_out_view(table: Table) -> Table:
    """The table as training sees it: without an evaluation split, train's last 10% held out.

    A source of one file gives one split, and the training commands evaluate on its last 10%
    of rows (`shared.sources.with_eval_split`), so that is where a leak would hurt.
    """
    rows = table.splits["train"]
    cut = len(rows) - max(1, len(rows) // 10)
    if table.eval_splits or cut < 1:
        return table
    table.notes.append(f"no evaluation split: leaks are checked in train's last {len(rows) - cut:,}"
                       " rows ('held-out'), which the training commands hold out")  # fmt: skip
    return replace(table, splits={"train": rows[:cut], "held-out": rows[cut:]})


def analyse(stage: StageData, cfg: DataReportConfig) -> tuple[Table, ReportData, LeakReport]:
    """Read the dataset, check every row and split, find leaks, measure lengths and tokens."""
    start = time.perf_counter()
    table = read_table(cfg.dataset, cfg.text_field, cfg.label_field, cfg.labels)
    limits = Limits(cfg.min_chars, cfg.max_chars, cfg.min_words, cfg.max_imbalance)
    findings = check_table(table, limits)
    leak_options = LeakOptions(cfg.ngram, cfg.min_words, cfg.leak_share,
                               find_sources=cfg.write_clean is not None)  # fmt: skip
    leaks = find_leaks(held_out_view(table), leak_options)
    series = _series(table, cfg, stage)
    stats, tokens = _measure(table, series, stage, cfg.token_rows)
    if cfg.token_rows and any(len(rows) > cfg.token_rows for rows in series.values()):
        table.notes.append(f"tokens: counted on {cfg.token_rows:,} rows spread over each larger "
                           "split (--token_rows)")  # fmt: skip
    data = ReportData(
        dataset=table.name, stage=stage.stage,
        rows={label: len(rows) for label, rows in series.items()},
        stats=stats, labels=_label_counts(series),
        token_names={name: (tok.name, tok.note) for name, tok in tokens.items()},
        leaks=leaks.splits, findings=findings + leaks.findings,
        notes=table.notes, options={**config_to_dict(cfg), **asdict(leak_options)},
    )  # fmt: skip
    data.seconds = time.perf_counter() - start
    return table, data, leaks


def write_report(stage: StageData, cfg: DataReportConfig, data: ReportData) -> Path:
    """runs/<stage>/data-report/<name>/: config.json, report.json and lengths.png."""
    run = Run.start(f"{stage.stage}/data-report", cfg, name=cfg.run_name, quiet=True)
    report = build_report(data)
    write_text_atomic(run.folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
    lengths = {name: {label: (fields[name].chars, fields[name].tokens.lengths)
                      for label, fields in data.stats.items()}
               for name in data.token_names}  # fmt: skip
    token_name = next(iter(data.token_names.values()))[0].split(" (")[0]
    length_figure(run.folder / "lengths.png", lengths, f"{data.dataset}: row lengths",
                  token_name)  # fmt: skip
    return run.folder


def data_report_command(stage: StageData, argv: list[str]) -> None:
    """The `data-report` verb of `stage`: parse, analyse, write the run folder, print."""
    cfg = parse_config(DataReportConfig, argv, prog=f"{stage.stage} data-report",
                       description=f"A report on a dataset's rows: sizes, lengths, labels, "
                       f"leaks between splits, faulty rows. {stage.stage}'s dataset: "
                       f"{stage.dataset}.", saved={"dataset": stage.dataset})  # fmt: skip
    if not cfg.dataset:
        raise UsageError(f"{stage.stage} data-report needs --dataset (a registry name or a source)")
    table, data, leaks = analyse(stage, cfg)
    folder = write_report(stage, cfg, data)
    print(format_summary(data, cfg.examples))
    print(f"report: {folder}/report.json, lengths.png")
    if cfg.write_clean is not None:
        dropped = write_clean(table, drop_reasons(data.findings, leaks.train_sources),
                              cfg.write_clean)  # fmt: skip
        print(clean_summary(table, dropped, cfg.write_clean))
