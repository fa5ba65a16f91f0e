"""`--write-clean PATH`: a copy of the dataset without the rows the report names, reasons counted.

What is dropped: every row with a fault of its own (unreadable, missing field, empty, too short
or long, bad bytes, mojibake, control characters, one character repeated, a label outside the
set), the second and later copies of a text in a split, and the *training* rows an evaluation
row leaks from. The evaluation splits keep their leaking rows: they are the benchmark, and the
cure for a leak is a training split that does not hold them. Each dropped row is counted once,
under the first of its reasons in the order of `checks.KINDS`; "overlaps_eval" counts the
training rows that held an evaluation row or one of its long phrases.

The copy keeps the input's format where the input is a local file (the same lines, header
first), and is JSON lines otherwise. One split gives one file at PATH; several give a folder
PATH with a file a split (`train.tsv`, `validation.tsv`), which `--dataset tsv:PATH` reads
back with the same splits. It is written to a temporary name and renamed, so a crash leaves no
half-written copy.
"""

import json
import tempfile
from collections import Counter
from pathlib import Path

from shared.atomic import replace_folder, write_text_atomic
from shared.data_report.checks import KINDS, SPLIT_KINDS, Finding
from shared.data_report.overlap import LEAK_KINDS
from shared.data_report.rows import Row, Table, csv_line

OVERLAPS_EVAL = "overlaps_eval"
_SUFFIX = {"text": ".txt", "tsv": ".tsv", "csv": ".csv", "jsonl": ".jsonl"}


def drop_reasons(
    findings: list[Finding], train_sources: dict[int, str]
) -> dict[tuple[str, int], str]:
    """(split, row) -> the reason it is dropped: its first fault in KINDS' order."""
    order = {kind: i for i, kind in enumerate(KINDS)}
    reasons: dict[tuple[str, int], str] = {}
    for finding in sorted(findings, key=lambda f: order[f.kind]):
        if finding.row < 0 or finding.kind in SPLIT_KINDS or finding.kind in LEAK_KINDS:
            continue
        reasons.setdefault((finding.split, finding.row), finding.kind)
    for row in train_sources:
        reasons.setdefault(("train", row), OVERLAPS_EVAL)
    return reasons


def _json_line(row: Row, table: Table) -> str:
    value: dict[str, str | int | None] = dict(row.texts)
    if table.label_field is not None:  # "1" was most likely an integer (sst2's, parquet's)
        label = row.label
        value[table.label_field] = int(label) if label and label.lstrip("-").isdigit() else label
    return json.dumps(value, ensure_ascii=False)


def _text_lines(rows: list[Row], dropped: set[int]) -> list[str]:
    """The kept lines, each after the blank lines that stood before it or before the dropped
    lines just above it: the paragraphs stay."""
    lines, carry = [], ""
    for i, row in enumerate(rows):
        raw = row.raw or ""
        body = raw.lstrip("\n")
        lead = max(carry, raw[: len(raw) - len(body)], key=len)
        if i in dropped:
            carry = lead
            continue
        lines.append(lead + body)
        carry = ""
    return lines


def split_text(table: Table, split: str, dropped: set[int]) -> str:
    """The kept rows of one split (all but `dropped`) in the output format."""
    rows = table.splits[split]
    keep = [row for i, row in enumerate(rows) if i not in dropped]
    if table.kind == "text":
        lines = _text_lines(rows, dropped)
    elif table.kind == "jsonl":
        lines = [row.raw or _json_line(row, table) for row in keep]
    elif table.kind in ("tsv", "csv"):
        header = table.headers.get(split, [])
        first = "\t".join(header) if table.kind == "tsv" else csv_line(header)
        lines = [first, *(row.raw or "" for row in keep)]
    else:
        lines = [_json_line(row, table) for row in keep]
    return "".join(line + "\n" for line in lines)


def write_clean(table: Table, reasons: dict[tuple[str, int], str], path: Path) -> Counter[str]:
    """Write the rows without a reason to `path`; the count of rows dropped for each reason."""
    texts = {}
    for split in table.splits:
        texts[split] = split_text(table, split, {i for s, i in reasons if s == split})
    suffix = _SUFFIX.get(table.kind, ".jsonl")
    if len(texts) == 1:
        write_text_atomic(path, next(iter(texts.values())))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(prefix=f".{path.name}.part-", dir=path.parent))
        for split, text in texts.items():
            (new / f"{split}{suffix}").write_text(text, encoding="utf-8")
        replace_folder(new, path)
    return Counter(reasons.values())


def clean_summary(table: Table, dropped: Counter[str], path: Path) -> str:
    total = sum(len(rows) for rows in table.splits.values())
    kept = total - sum(dropped.values())
    reasons = ", ".join(f"{kind} {n:,}" for kind, n in dropped.most_common()) or "none"
    return f"wrote {path}: kept {kept:,} of {total:,} rows; dropped: {reasons}"
