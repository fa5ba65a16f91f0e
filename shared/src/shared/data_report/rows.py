"""Reading a dataset's rows without refusing any: the report must find bad rows, not stop at one.

`shared.sources.load_source` refuses a file with a byte that is not UTF-8, a row with an empty
field or a label outside the set, because a training command must not train on them. The report
reads the same sources (the same `--dataset` spellings, the same split rule) but keeps every row
and writes down what was wrong with it while reading:

    invalid bytes   the file is decoded with `surrogateescape`, so a byte that is not UTF-8
                    survives as a lone surrogate (U+DC80..U+DCFF) in its row, to be found later
    unreadable      a JSON line that does not parse, a TSV/CSV row with the wrong number of fields
    missing fields  a field the row does not have becomes None (checked in `checks`)

Local files (text, jsonl, csv, tsv) are read here byte by byte; parquet, the hub and the
registry's datasets come through `datasets` (their bytes are already decoded and typed).
A `text:` file gives one row a line; its blank lines separate paragraphs and are not rows.
"""

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import UsageError
from shared.sources import Source, parse_source, split_files

# What the registry's datasets hold: (text fields, label field, labels).
REGISTRY_FIELDS: dict[str, tuple[list[str], str | None, list[str] | None]] = {
    "sst2": (["sentence"], "label", ["0", "1"]),
    "multi30k": (["de", "en"], None, None),
}
TEXT_FIELD = "text"  # the one field of a text dataset's rows (a line each)


@dataclass(slots=True)
class Row:
    """One row as read: its text fields (None where the row lacks one), its label, its origin."""

    where: str  # "path:line", or "split 'train' row 12" where no file names it
    texts: dict[str, str | None]
    label: str | None = None  # as text ("1"); None where the dataset has no labels
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail) from reading
    raw: str | None = None  # the line as read, where the file has lines (write-clean copies it)

    def text(self, name: str) -> str:
        return self.texts.get(name) or ""


@dataclass
class Table:
    """Every split's rows and what the report needs to know about them."""

    name: str  # the --dataset value
    kind: str  # a source kind (text, jsonl, csv, tsv, parquet, hf) or "registry"
    splits: dict[str, list[Row]]
    text_fields: list[str]
    label_field: str | None
    labels: list[str] | None  # the allowed labels; None: those of the train split
    headers: dict[str, list[str]] = field(default_factory=dict)  # csv/tsv: each split's columns
    files: dict[str, list[Path]] = field(default_factory=dict)  # each split's files (local)
    notes: list[str] = field(default_factory=list)  # facts worth a line in the summary

    @property
    def eval_splits(self) -> list[str]:
        return [name for name in self.splits if name != "train"]

    def texts(self, split: str, name: str) -> list[str]:
        return [row.text(name) for row in self.splits[split]]


# ----------------------------------------------------------------------------------------------
# Bytes to text


def has_bad_bytes(text: str) -> bool:
    """Whether `text` holds a byte that was not UTF-8 (kept as a lone surrogate)."""
    return any("\udc80" <= c <= "\udcff" for c in text)


def shown(text: str) -> str:
    """`text` with its undecodable bytes as U+FFFD, fit to print or write as JSON."""
    if not has_bad_bytes(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _bad_bytes_detail(text: str) -> str:
    """Which byte is wrong, and how the line reads in cp1252 (the usual other encoding)."""
    data = text.encode("utf-8", "surrogateescape")
    column = next(i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff")
    byte = ord(text[column]) - 0xDC00
    as_cp1252 = data.decode("cp1252", "replace").strip()
    return f"byte {byte:#04x} at column {column + 1}; in cp1252 it reads {as_cp1252[:60]!r}"


def _lines(path: Path) -> list[str]:
    """The file's lines, decoded with surrogateescape, without their line ends."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark starts the file, not its first row
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _mark_bad_bytes(row: Row) -> Row:
    for name, text in row.texts.items():
        if text is not None and has_bad_bytes(text):
            row.problems.append(("invalid_utf8", f"{name}: {_bad_bytes_detail(text)}"))
    if row.label is not None and has_bad_bytes(row.label):
        row.problems.append(("invalid_utf8", f"label: {_bad_bytes_detail(row.label)}"))
    return row


# ----------------------------------------------------------------------------------------------
# One file of each format -> rows (every column kept; fields are chosen later)


def line_rows(lines: list[str], where: str) -> tuple[list[Row], int]:
    """A row a line that is not blank (rows, blank lines). A row's `raw` starts with the blank
    lines just before it, so a clean copy keeps the paragraphs (`clean`)."""
    rows, blank, run = [], 0, 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            blank, run = blank + 1, run + 1
            continue
        rows.append(Row(f"{where}{number}", {TEXT_FIELD: line}, raw="\n" * run + line))
        run = 0
    return rows, blank


def _read_text(path: Path) -> tuple[list[Row], list[str], int]:
    rows, blank = line_rows(_lines(path), f"{path}:")
    return rows, [TEXT_FIELD], blank


def _field_count(parts: list[str], header: list[str]) -> str:
    return f"{len(parts)} fields; the header has {len(header)}"


def _read_tsv(path: Path) -> tuple[list[Row], list[str], int]:
    lines = _lines(path)
    if not lines:
        return [], [], 0
    header = lines[0].split("\t")
    rows, blank = [], 0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            blank += 1
            continue
        parts = line.split("\t")
        row = Row(f"{path}:{number}", dict(zip(header, parts, strict=False)), raw=line)
        if len(parts) != len(header):
            row.problems.append(("unreadable", _field_count(parts, header)))
        rows.append(row)
    return rows, header, blank


def csv_line(values: list[str]) -> str:
    """One CSV record, quoted where it must be, without its line end."""
    out = io.StringIO()
    csv.writer(out).writerow(values)  # its line end "\r\n" makes it quote a field's newlines
    return out.getvalue().removesuffix("\r\n")


def _read_csv(path: Path) -> tuple[list[Row], list[str], int]:
    text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows, blank, line = [], 0, reader.line_num
    for parts in reader:
        start, line = line + 1, reader.line_num
        if not any(p.strip() for p in parts):
            blank += 1
            continue
        row = Row(f"{path}:{start}", dict(zip(header, parts, strict=False)), raw=csv_line(parts))
        if len(parts) != len(header):
            row.problems.append(("unreadable", _field_count(parts, header)))
        rows.append(row)
    return rows, header, blank


def _json_row(where: str, line: str, value: Any) -> Row:
    if not isinstance(value, dict):
        return Row(where, {}, raw=line, problems=[("unreadable", "not a JSON object")])
    texts = {k: v if v is None or isinstance(v, str) else json.dumps(v) for k, v in value.items()}
    return Row(where, texts, raw=line)


def _read_jsonl(path: Path) -> tuple[list[Row], list[str], int]:
    """JSON lines; a file that is one JSON array (`.json`) gives one row an item."""
    lines = _lines(path)
    if lines and lines[0].lstrip().startswith("["):
        try:
            items = json.loads("\n".join(lines), strict=False)
        except json.JSONDecodeError as error:
            raise UsageError(f"cannot read {path} as JSON: {error}") from None
        rows = [_json_row(f"{path}: item {i + 1}", json.dumps(v), v) for i, v in enumerate(items)]
        return rows, [], 0
    rows, blank = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            blank += 1
            continue
        try:
            value = json.loads(line, strict=False)  # strict=False: control characters allowed
        except json.JSONDecodeError as error:
            where = f"{path}:{number}"
            rows.append(Row(where, {}, raw=line, problems=[("unreadable", f"bad JSON: {error}")]))
            continue
        rows.append(_json_row(f"{path}:{number}", line, value))
    return rows, [], blank


_READERS = {"text": _read_text, "tsv": _read_tsv, "csv": _read_csv, "jsonl": _read_jsonl}


# ----------------------------------------------------------------------------------------------
# Datasets that come through `datasets` (parquet, the hub, the registry)


def _dataset_rows(split: str, data: Any) -> list[Row]:
    """A `datasets.Dataset` (or a dict of columns) as rows; a None stays None (missing)."""
    values = data.to_dict() if hasattr(data, "to_dict") else dict(data)  # Arrow's columns at once
    columns = list(values)
    n = len(values[columns[0]]) if columns else 0
    return [
        Row(f"{split} row {i + 1}",
            {c: None if values[c][i] is None else str(values[c][i]) for c in columns})
        for i in range(n)
    ]  # fmt: skip


def _read_registry(name: str) -> Table:
    from shared import datasets

    loaded = datasets.load(name)
    splits, blank = {}, 0
    for split, data in loaded.items():
        if isinstance(data, str):
            splits[split], skipped = line_rows(data.split("\n"), f"{split} line ")
            blank += skipped
        else:
            splits[split] = _dataset_rows(split, data)
    fields, label_field, labels = REGISTRY_FIELDS.get(name, ([TEXT_FIELD], None, None))
    kind = "text" if name not in REGISTRY_FIELDS else "registry"  # a text dataset: lines
    table = Table(name, kind, splits, list(fields), label_field, labels)
    if blank:
        table.notes.append(f"blank lines ({blank:,}) separate paragraphs; they are not rows")
    return table


def _read_with_datasets(source: Source) -> dict[str, list[Row]]:
    import datasets as hf_datasets

    hf_datasets.disable_progress_bars()
    try:
        if source.kind == "hf":  # a local folder afresh, as shared.sources reads it
            local = Path(source.location).expanduser().is_dir()
            fresh = {"download_mode": "force_redownload", "verification_mode": "no_checks"}
            loaded = dict(hf_datasets.load_dataset(source.location, source.config,
                                                   **(fresh if local else {})))  # fmt: skip
        else:
            loaded = {split: hf_datasets.load_dataset("parquet", data_files=[str(f) for f in files],
                                                      split="train")
                      for split, files in split_files(source).items()}  # fmt: skip
    except Exception as error:  # the loaders raise many kinds; each means "cannot read it"
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"--dataset {source}: cannot read it: {first}") from None
    finally:
        hf_datasets.enable_progress_bars()
    return {split: _dataset_rows(split, data) for split, data in loaded.items()}


def _read_local(source: Source) -> Table:
    files = split_files(source)
    splits: dict[str, list[Row]] = {}
    headers: dict[str, list[str]] = {}
    blank = 0
    for split, paths in files.items():
        splits[split] = []
        for path in paths:
            rows, header, skipped = _READERS[source.kind](path)
            splits[split] += [_mark_bad_bytes(row) for row in rows]
            headers.setdefault(split, header)
            blank += skipped
    table = Table(str(source), source.kind, splits, [], None, None, headers, files)
    if blank:
        what = "separate paragraphs" if source.kind == "text" else "were skipped"
        table.notes.append(f"blank lines ({blank:,}) {what}; they are not rows")
    return table


# ----------------------------------------------------------------------------------------------
# Choosing the fields


def _columns(table: Table) -> list[str]:
    """Every column any row has, in the order first seen."""
    seen: dict[str, None] = {}
    for header in table.headers.values():
        seen.update(dict.fromkeys(header))
    for rows in table.splits.values():
        for row in rows[:1000]:
            seen.update(dict.fromkeys(row.texts))
    return list(seen)


def _choose_fields(table: Table, text_fields: list[str], label_field: str) -> None:
    """Fill in the table's text fields and label field: the options', else the dataset's."""
    columns = _columns(table)
    if label_field == "auto":
        table.label_field = table.label_field or ("label" if "label" in columns else None)
    else:
        table.label_field = None if label_field == "none" else label_field
    if text_fields:
        table.text_fields = list(text_fields)
    elif not table.text_fields:
        preferred = [c for c in ("text", "sentence") if c in columns]
        rest = [c for c in columns if c != table.label_field]
        table.text_fields = preferred[:1] or rest
    wanted = [*table.text_fields, *([table.label_field] if table.label_field else [])]
    absent = [name for name in wanted if name not in columns]
    if absent:
        raise UsageError(
            f"--dataset {table.name} has no field {absent[0]!r} in any row (its fields: "
            f"{', '.join(columns) or 'none'}); name the right one with --text_field or "
            "--label_field"
        )
    if not table.text_fields:
        raise UsageError(f"--dataset {table.name} has no text field; name it with --text_field")


def _move_label(table: Table) -> None:
    """Each row's label out of its texts, and its text fields only (None where absent)."""
    for rows in table.splits.values():
        for row in rows:
            if table.label_field is not None:
                row.label = row.texts.get(table.label_field)
                row.label = None if row.label is None else row.label.strip()
            row.texts = {name: row.texts.get(name) for name in table.text_fields}


def read_table(
    spec: str, text_fields: list[str], label_field: str = "auto", labels: list[str] | None = None
) -> Table:
    """Every row of the dataset `spec` (a registry name or a source), faults and all.

    A UsageError only where nothing can be read: no such file, a format that does not parse
    at all, a named field no row has.
    """
    source = parse_source(spec)
    if source is None:
        table = _read_registry(spec)
    elif source.kind in _READERS:
        table = _read_local(source)
    else:
        table = Table(spec, source.kind, _read_with_datasets(source), [], None, None)
    if "train" not in table.splits:
        raise UsageError(f"--dataset {spec} has no train split (its splits: "
                         f"{', '.join(table.splits)})")  # fmt: skip
    table.splits = {name: table.splits[name]
                    for name in sorted(table.splits, key=lambda name: name != "train")}  # fmt: skip
    _choose_fields(table, text_fields, label_field)
    _move_label(table)
    if labels:
        table.labels = [str(label) for label in labels]
    if not any(table.splits.values()):
        raise UsageError(f"--dataset {spec} holds no rows")
    return table
