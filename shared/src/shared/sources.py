"""Data named by one string: a registry name, a local file or folder, or a hub dataset.

Every command that takes `--dataset` reads it through here, so one spelling works everywhere:

    tinyshakespeare                 a name in the registry (shared.datasets)
    text:PATH                       plain UTF-8; PATH a file or a folder of .txt files
    jsonl:PATH  csv:PATH  tsv:PATH  parquet:PATH
    hf:ID  or  hf:ID:CONFIG         a dataset on the Hugging Face hub (needs internet), or a
                                    local folder in the hub's layout

The local formats and the hub go through `datasets.load_dataset`, which reads local files
offline and caches them as Arrow, so a second run starts at once. Why not read them by hand?
Quoting in CSV, nested JSON and Parquet's column types are solved problems; the same loader is
what turns `hf:Salesforce/wikitext:wikitext-103-raw-v1` into rows on a machine with internet.

The split rule, the same for every format: a PATH that is a folder holding files named after
splits (`train.jsonl`, `validation.jsonl` or `val`/`dev`, `test.jsonl`) gives those splits;
anything else is one `train` split, and a command that needs an evaluation split takes the
last 10% of its rows (`with_eval_split`: in file order, so the cut is the same every run).

What this module refuses, each with one line naming the file and row (exit 2, nothing written):
a file that is not UTF-8, a field a command needs that the rows do not have, a row whose field
is empty or missing, a label outside the set the command knows.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import UsageError

LOCAL_FORMATS = ("text", "jsonl", "csv", "tsv", "parquet")
FORMATS = (*LOCAL_FORMATS, "hf")
_SUFFIXES = {
    "text": (".txt", ".text"),
    "jsonl": (".jsonl", ".json"),
    "csv": (".csv",),
    "tsv": (".tsv",),
    "parquet": (".parquet",),
}
# A file called after one of these in a source folder is that split.
_SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation",
                "dev": "validation", "test": "test"}  # fmt: skip
EVAL_SPLITS = ("validation", "test")
SOURCE_HELP = (
    "text:PATH, jsonl:PATH, csv:PATH, tsv:PATH, parquet:PATH (a file, or a folder with "
    "train/validation/test files; else the last 10% of rows is held out), or hf:ID[:CONFIG]"
)


@dataclass(frozen=True)
class Source:
    """A parsed `--dataset` value that is not a registry name."""

    kind: str  # one of FORMATS
    location: str  # a path, or a hub id
    config: str | None = None  # the hub dataset's configuration (wikitext-103-raw-v1)

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}" + (f":{self.config}" if self.config else "")


def parse_source(spec: str) -> Source | None:
    """The source `spec` names, or None when it is a plain registry name."""
    kind, colon, rest = spec.partition(":")
    if not colon:
        return None
    if kind not in FORMATS:
        raise UsageError(f"--dataset {spec!r}: unknown source kind {kind!r}; use a registry name "
                         f"or one of {', '.join(k + ':' for k in FORMATS)}")  # fmt: skip
    if not rest:
        raise UsageError(f"--dataset {spec!r} names no {'dataset' if kind == 'hf' else 'path'}")
    if kind == "hf":
        location, _, config = rest.partition(":")
        return Source("hf", location, config or None)
    return Source(kind, rest)


def is_source(spec: str) -> bool:
    """Whether `spec` is a local or hub source rather than a registry name."""
    return parse_source(spec) is not None


# ----------------------------------------------------------------------------------------------
# Files


def split_files(source: Source) -> dict[str, list[Path]]:
    """{split: files} for a local source, by the split rule in the module docstring."""
    path = Path(source.location).expanduser()
    if path.is_file():
        return {"train": [path]}
    if not path.is_dir():
        raise UsageError(f"--dataset {source}: {path} does not exist")
    suffixes = _SUFFIXES[source.kind]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise UsageError(f"--dataset {source}: {path} holds no {'/'.join(suffixes)} files")
    named: dict[str, list[Path]] = {}
    for file in files:
        split = _SPLIT_NAMES.get(file.stem.lower().split(".")[0].split("-")[0])
        if split is not None:
            named.setdefault(split, []).append(file)
    if "train" in named:
        return named
    return {"train": files}


def check_utf8(path: Path) -> None:
    """A UsageError naming the first line of `path` that is not valid UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UsageError(
            f"{path}:{line} is not valid UTF-8 (byte {data[error.start]:#04x}); "
            "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _load_file(kind: str, path: Path, sample_by: str) -> Any:
    import datasets as hf_datasets

    if kind != "parquet":
        check_utf8(path)
    builder = {"jsonl": "json", "tsv": "csv"}.get(kind, kind)
    kwargs: dict[str, Any] = {"data_files": [str(path)], "split": "train"}
    if kind == "tsv":
        kwargs.update(delimiter="\t", quoting=3)  # csv.QUOTE_NONE: a quote is just a character
    if kind == "text":
        kwargs.update(sample_by=sample_by, keep_linebreaks=sample_by == "document")
    hf_datasets.disable_progress_bars()
    try:
        return hf_datasets.load_dataset(builder, **kwargs)
    except Exception as error:  # the builders raise many kinds; each is a bad file to the user
        cause = error.__cause__ or error
        first = str(cause).splitlines()[0] if str(cause) else ""
        raise UsageError(f"cannot read {path} as {kind}: {type(cause).__name__}: {first}") from None
    finally:
        hf_datasets.enable_progress_bars()


# Where each file's rows start in a split, to name the file and line of a bad row.
@dataclass(frozen=True)
class _Origin:
    path: Path
    first_row: int
    header_lines: int  # lines before the first row (a CSV header)

    def where(self, row: int) -> str:
        return f"{self.path}:{row - self.first_row + 1 + self.header_lines}"


def _load_local(source: Source, sample_by: str) -> tuple[dict[str, Any], dict[str, list]]:
    import datasets as hf_datasets

    splits, origins = {}, {}
    for split, files in split_files(source).items():
        parts, starts, total = [], [], 0
        for file in files:
            part = _load_file(source.kind, file, sample_by)
            header = 1 if source.kind in ("csv", "tsv") else 0
            starts.append(_Origin(file, total, header))
            parts.append(part)
            total += len(part)
        splits[split] = parts[0] if len(parts) == 1 else hf_datasets.concatenate_datasets(parts)
        origins[split] = starts
    return splits, origins


def _load_hub(source: Source) -> dict[str, Any]:
    import datasets as hf_datasets

    # A local folder in the hub's layout is built afresh each time: the cache knows it only by
    # its name and file patterns, so an edited folder would otherwise give yesterday's rows.
    local = Path(source.location).expanduser().is_dir()
    fresh = {"download_mode": "force_redownload", "verification_mode": "no_checks"}
    try:
        loaded = hf_datasets.load_dataset(
            source.location, source.config, **(fresh if local else {})
        )
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE")
        hint = " (the hub is off: HF_DATASETS_OFFLINE)" if offline else ""
        raise UsageError(f"--dataset {source}: cannot load it{hint}: {first}") from None
    return dict(loaded)


# ----------------------------------------------------------------------------------------------
# Rows


def _where(origins: list[_Origin] | None, split: str, row: int) -> str:
    if not origins:
        return f"split {split!r} row {row + 1}"
    origin = next(o for o in reversed(origins) if o.first_row <= row)
    return origin.where(row)


def _check_rows(split: str, data: Any, fields: Sequence[str], origins: list | None,
                labels: Sequence[Any] | None, label_field: str | None) -> None:  # fmt: skip
    """Every needed field present and non-empty; every label in the set."""
    missing = [f for f in fields if f not in data.column_names]
    if missing:
        where = origins[0].path if origins else f"split {split!r}"
        raise UsageError(
            f"{where} has no field {missing[0]!r} (its fields: {', '.join(data.column_names)}); "
            f"rename it, or name the field with the command's --{missing[0]}_field option"
        )
    for field_name in fields:
        for row, value in enumerate(data[field_name]):
            if value is None or (isinstance(value, str) and not value.strip()):
                state = "no" if value is None else "an empty"
                raise UsageError(f"{_where(origins, split, row)}: {state} {field_name!r}; "
                                 "fill it or delete the row")  # fmt: skip
    if labels is not None and label_field is not None:
        allowed = {str(label) for label in labels}
        for row, value in enumerate(data[label_field]):
            if str(value) not in allowed:
                raise UsageError(
                    f"{_where(origins, split, row)}: label {value!r} is not one of "
                    f"{', '.join(sorted(allowed))}"
                )


def load_source(spec: str, fields: Sequence[str], *, sample_by: str = "line",
                labels: Sequence[Any] | None = None, label_field: str | None = None,
                drop_blank: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The splits of source `spec` as `datasets.Dataset`s, each with the `fields` checked.

    `fields` are the columns the command reads (for `text:` sources: "text"); `sample_by`
    "line" makes one row a line of a text file and "document" one row a whole file; `labels`
    is the set `label_field`'s values must come from. `drop_blank` names a field whose blank
    rows are dropped instead of refused: a corpus's empty lines (WikiText has one between
    every paragraph) separate texts, while an empty sentence in a labelled table is a mistake.
    """
    source = parse_source(spec)
    if source is None:
        raise UsageError(f"--dataset {spec!r} is a registry name, not a source")
    if source.kind == "hf":
        splits, origins = _load_hub(source), {}
    else:
        splits, origins = _load_local(source, sample_by)
    if source.kind == "text" and sample_by == "line":
        drop_blank = "text"  # a text file's blank lines separate paragraphs; they are not rows
    if drop_blank is not None:
        splits = {name: _without_blank(data, drop_blank) for name, data in splits.items()}
        origins = {}  # rows no longer match lines one to one; name the split and row instead
    for split, data in splits.items():
        _check_rows(split, data, fields, origins.get(split), labels, label_field)
    return splits


def _without_blank(data: Any, field: str) -> Any:
    if field not in data.column_names:
        return data  # _check_rows names the missing field
    keep = [i for i, text in enumerate(data[field]) if text is not None and str(text).strip()]
    return data.select(keep) if len(keep) < len(data) else data


def with_eval_split(splits: dict[str, Any], fraction: float = 0.1) -> tuple[dict[str, Any], str]:
    """(splits with an evaluation split, its name): the source's own, else train's last 10%."""
    for name in EVAL_SPLITS:
        if name in splits and len(splits[name]):
            return splits, name
    train = splits["train"]
    cut = len(train) - max(1, int(len(train) * fraction))
    if cut < 1:
        raise UsageError(f"{len(train)} rows are too few to hold 10% out for evaluation; give a "
                         "validation file (a folder with train.* and validation.*)")  # fmt: skip
    held = {"train": train.select(range(cut)), "validation": train.select(range(cut, len(train)))}
    return held, "validation"


def text_corpus(spec: str, text_field: str = "text") -> dict[str, str]:
    """{"train": str, "val": str} for a character or token language model, from any source.

    A `text:` file is read whole (its line breaks kept); other formats join the `text_field`
    of their rows with newlines. Without a validation split the last 10% of the characters of
    a single text, or of the rows otherwise, is held out, as for tinyshakespeare.
    """
    source = parse_source(spec)
    if source is not None and source.kind == "text":
        splits = load_source(spec, ["text"], sample_by="document")
        joined = {name: "".join(data["text"]) for name, data in splits.items()}
        if "validation" not in joined:
            text = joined["train"]
            cut = int(len(text) * 0.9)
            return {"train": text[:cut], "val": text[cut:]}
        return {"train": joined["train"], "val": joined["validation"]}
    splits, eval_name = with_eval_split(load_source(spec, [text_field], drop_blank=text_field))
    return {"train": "\n".join(splits["train"][text_field]),
            "val": "\n".join(splits[eval_name][text_field])}  # fmt: skip


def training_texts(spec: str, text_field: str = "text") -> list[str]:
    """The train split's texts, one a row (a line of a `text:` file): what pretraining reads.

    Pretraining holds its own rows out to measure its loss, so a source's other splits stay
    unread here, kept for the evaluations that report on them.
    """
    return list(load_source(spec, [text_field], drop_blank=text_field)["train"][text_field])
