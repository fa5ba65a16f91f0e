"""What can be wrong with a row, or with a split, found one check at a time.

Each finding names a kind (the table `KINDS` says what each means and why it matters), the
split and row, and a detail a reader can act on. Row checks look at one row; split checks
(duplicates, labels) look at a split at once. What a row shares with the *other* splits is the
leak finder's business (`overlap`).

Why these checks: each is a way a dataset quietly lies about a model. An empty or one-character
row teaches nothing and counts in the accuracy; a row of "!!!!!!!!" or a line with a stray
control character is the residue of a scrape; text decoded with the wrong codec ("cafÃ©")
splits every word it touches into rare tokens; the same sentence twice weighs double, and with
two labels it is a contradiction the model is graded on; a label outside the set is a typo that
becomes a class of its own.
"""

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from shared.data_report.rows import Row, Table

KINDS: dict[str, str] = {
    "unreadable": "a line that is not a row of its format (bad JSON, wrong number of fields)",
    "missing_field": "a row without one of the text fields or the label",
    "empty": "a text field that is empty or only spaces",
    "too_short": "a text shorter than --min_chars characters",
    "too_long": "a text longer than --max_chars characters",
    "invalid_utf8": "bytes that are not UTF-8",
    "mixed_encoding": "a file with lines in UTF-8 and lines in another encoding",
    "mojibake": "UTF-8 once decoded as cp1252 or Latin-1 ('Ã©' for 'é'), or U+FFFD (a lost char)",
    "control_chars": "control or invisible format characters (NUL, BEL, zero-width space, BOM)",
    "repeated_char": "a text that is one character repeated ('!!!!!!!!')",
    "bad_label": "a label outside the set (--labels, the dataset's, else the train split's)",
    "label_imbalance": "a split whose commonest label outnumbers its rarest over --max_imbalance",
    "duplicate": "the same text again in one split (case and spacing ignored)",
    "conflicting_labels": "the same text in one split with another label",
    "cross_split_duplicate": "an evaluation row whose text is also a training row",
    "contained_in_train": "an evaluation row whose text occurs inside a training row",
    "shared_phrase": "an evaluation row that shares a --ngram-word phrase with a training row",
}
# Findings about a whole split or file, not one row: write-clean drops no row for them.
SPLIT_KINDS = ("mixed_encoding", "label_imbalance")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a key of KINDS
    split: str
    row: int  # the row's index in its split; -1 for a finding about the split or a file
    where: str  # "path:line", or the split
    text: str  # the row's text, to quote (or what the finding is about)
    detail: str = ""
    weight: float = 0.0  # how bad, to quote the worst first (a length, a count)


@dataclass(frozen=True)
class Limits:
    """The thresholds, from the command's options."""

    min_chars: int = 3
    max_chars: int = 1000
    min_words: int = 3  # shorter rows repeat by chance: no duplicate or leak below this
    max_imbalance: float = 4.0


# ----------------------------------------------------------------------------------------------
# One text

_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u2064\ufeff]"
)
# A UTF-8 lead byte read as cp1252/Latin-1 (U+00C2..U+00F4), then 1-3 continuation bytes
# (0x80-0xBF: U+0080..U+00BF in Latin-1, or the letters cp1252 puts at 0x80-0x9F).
_CONTINUATION = "\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc" \
                "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a" \
                "\u20ac\u2122"  # fmt: skip
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][{_CONTINUATION}]{{1,3}}")


def mojibake(text: str) -> str | None:
    """'Ã©' -> 'é' where `text` holds UTF-8 bytes that were decoded as cp1252 or Latin-1."""
    if "\ufffd" in text:
        return "U+FFFD: a character an earlier decoding could not read"
    for match in _MOJIBAKE.finditer(text):
        for codec in ("cp1252", "latin-1"):
            try:
                fixed = match.group().encode(codec).decode("utf-8")
            except UnicodeError:
                continue
            return f"{match.group()!r} reads {fixed!r} (UTF-8 decoded as {codec})"
    return None


def repeated_char(text: str) -> bool:
    """'!!!!!!!!', '----', 'aaaa': one character, at least three times, and nothing else."""
    chars = text.replace(" ", "")
    return len(chars) >= 3 and len(set(chars)) == 1


def text_findings(text: str, limits: Limits) -> list[tuple[str, str, float]]:
    """(kind, detail, weight) for each fault of one text field."""
    stripped = text.strip()
    if not stripped:
        return [("empty", "", 0.0)]
    found: list[tuple[str, str, float]] = []
    if len(stripped) < limits.min_chars:
        found.append(("too_short", f"{len(stripped)} of {limits.min_chars} characters",
                      -len(stripped)))  # fmt: skip
    if len(text) > limits.max_chars:
        found.append(("too_long", f"{len(text):,} characters", len(text)))
    if repeated_char(stripped):
        found.append(("repeated_char", f"{stripped[0]!r} x {len(stripped)}", len(stripped)))
    control = _CONTROL.findall(text)
    if control:
        names = ", ".join(sorted({f"U+{ord(c):04X}" for c in control}))
        found.append(("control_chars", f"{len(control)} ({names})", len(control)))
    if not text.isascii() and (broken := mojibake(text)):
        found.append(("mojibake", broken, 0.0))
    return found


# ----------------------------------------------------------------------------------------------
# Rows and splits


def row_findings(split: str, index: int, row: Row, table: Table, limits: Limits) -> list[Finding]:
    """Every fault of one row: those met while reading it, then each text field's, its label's."""
    several = len(table.text_fields) > 1
    quote = " | ".join(row.text(name) for name in table.text_fields)
    found = [Finding(kind, split, index, row.where, quote, detail)
             for kind, detail in row.problems]  # fmt: skip
    kinds = {kind for kind, _ in row.problems}
    if "unreadable" in kinds and not any(row.texts.values()):
        return found  # nothing was read from the line: its other faults would be noise
    for name in table.text_fields:
        text = row.texts.get(name)
        if text is None:
            found.append(Finding("missing_field", split, index, row.where, quote, f"no {name!r}"))
            continue
        for kind, detail, weight in text_findings(text, limits):
            if "invalid_utf8" in kinds and kind in ("mojibake", "control_chars"):
                continue  # undecodable bytes are the fault; their stand-ins are not another
            detail = f"{name}: {detail}" if several and detail else detail
            found.append(Finding(kind, split, index, row.where, row.text(name), detail, weight))
    if table.label_field is not None and row.label is None:
        found.append(Finding("missing_field", split, index, row.where, quote,
                             f"no {table.label_field!r}"))  # fmt: skip
    return found


def normalized(text: str) -> str:
    """What counts as the same text: case folded, runs of spaces as one."""
    return " ".join(text.casefold().split())


def row_key(row: Row, fields: list[str]) -> str:
    return "\x1f".join(normalized(row.text(name)) for name in fields)


def duplicate_findings(split: str, rows: list[Row], table: Table, limits: Limits) -> list[Finding]:
    """Second and later copies of a text in one split, and copies that carry another label."""
    first: dict[str, int] = {}
    found = []
    for index, row in enumerate(rows):
        key = row_key(row, table.text_fields)
        if len(key.split()) < limits.min_words:
            continue
        if key not in first:
            first[key] = index
            continue
        original = rows[first[key]]
        quote = " | ".join(row.text(name) for name in table.text_fields)
        found.append(Finding("duplicate", split, index, row.where, quote,
                             f"copy of {original.where}"))  # fmt: skip
        if row.label is not None and original.label is not None and row.label != original.label:
            detail = f"label {row.label}; {original.where} says {original.label}"
            found.append(Finding("conflicting_labels", split, index, row.where, quote, detail))
    return found


def allowed_labels(table: Table) -> set[str] | None:
    """The labels a row may carry: the option's or the dataset's, else those train holds."""
    if table.label_field is None:
        return None
    if table.labels is not None:
        return set(table.labels)
    return {row.label for row in table.splits["train"] if row.label is not None}


def label_findings(split: str, rows: list[Row], allowed: set[str], limits: Limits) -> list[Finding]:
    """Labels outside the set, and a split whose labels are far from balanced."""
    found = []
    counts: Counter[str] = Counter()
    for index, row in enumerate(rows):
        if row.label is None:
            continue
        counts[row.label] += 1
        if row.label not in allowed:
            found.append(Finding("bad_label", split, index, row.where, row.label,
                                 f"not one of {', '.join(sorted(allowed))}"))  # fmt: skip
    expected = sorted(allowed)  # a label outside the set is a bad label, not a rare class
    if len(expected) > 1 and rows:
        common = max(expected, key=lambda label: (counts[label], label))
        rare = min(expected, key=lambda label: (counts[label], label))
        most = counts[common]
        if most > limits.max_imbalance * max(counts[rare], 0.5):
            found.append(Finding("label_imbalance", split, -1, split, "",
                                 f"label {common}: {most:,} rows, label {rare}: {counts[rare]:,}",
                                 most / max(counts[rare], 1)))  # fmt: skip
    return found


def mixed_encoding_findings(split: str, rows: list[Row]) -> list[Finding]:
    """A file with valid non-ASCII UTF-8 lines and lines that are not UTF-8: two encodings."""
    per_file: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # file -> [utf-8, other]
    for row in rows:
        path = row.where.rpartition(":")[0] or row.where
        bad = any(kind == "invalid_utf8" for kind, _ in row.problems)
        if bad:
            per_file[path][1] += 1
        elif not all(t.isascii() for t in row.texts.values() if t):
            per_file[path][0] += 1
    return [
        Finding("mixed_encoding", split, -1, path, "",
                f"{utf8:,} rows of non-ASCII UTF-8 and {other:,} rows in another encoding",
                other)
        for path, (utf8, other) in per_file.items() if utf8 and other
    ]  # fmt: skip


def check_table(table: Table, limits: Limits) -> list[Finding]:
    """Every row and split finding of the table (the leak finder adds the cross-split ones)."""
    found: list[Finding] = []
    allowed = allowed_labels(table)
    for split, rows in table.splits.items():
        for index, row in enumerate(rows):
            found += row_findings(split, index, row, table, limits)
        found += duplicate_findings(split, rows, table, limits)
        found += mixed_encoding_findings(split, rows)
        if allowed is not None:
            found += label_findings(split, rows, allowed, limits)
    return found
