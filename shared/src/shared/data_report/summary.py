"""The report itself: `report.json` for a program, and one screen of text for a person.

The screen answers, in this order: how big is each split and how long are its rows (characters,
words, the stage's tokens, the unknown rate, the labels); does any evaluation split leak from
train; and what is wrong with which rows, the worst quoted, each kind once with its count. A
clean dataset gets one line that says so. Everything the screen leaves out (every split's
figures, up to 20 rows of each kind, the options) is in `report.json`.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.data_report.checks import KINDS, Finding
from shared.data_report.rows import shown
from shared.data_report.tokens import TokenCounts

JSON_EXAMPLES = 20  # rows of each kind kept in report.json
LINE = 120  # the widest line the summary prints


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def describe(values: list[int]) -> dict[str, float]:
    """mean, median, 95th percentile and max of a list of lengths (zeros where it is empty)."""
    if not values:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0}
    array = np.asarray(values)
    return {"mean": round(float(array.mean()), 2), "median": float(np.median(array)),
            "p95": round(float(np.percentile(array, 95)), 2), "max": int(array.max())}  # fmt: skip


@dataclass
class SeriesStats:
    """One split (or the selection rows) in one text field."""

    chars: list[int]
    words: list[int]
    tokens: TokenCounts

    def to_json(self) -> dict[str, Any]:
        return {
            "chars": describe(self.chars),
            "words": describe(self.words),
            "tokens": {**describe(self.tokens.lengths), "rows_tokenized": self.tokens.rows,
                       "unknown_rate": round(self.tokens.unknown_rate, 5)},
        }  # fmt: skip


@dataclass
class ReportData:
    """Everything the report says, gathered by the command."""

    dataset: str
    stage: str
    rows: dict[str, int]  # series -> rows (the selection rows included, as "select")
    stats: dict[str, dict[str, SeriesStats]]  # series -> text field -> figures
    labels: dict[str, dict[str, int]]  # series -> label -> rows
    token_names: dict[str, tuple[str, str]]  # text field -> (tokenizer's name, its note)
    leaks: dict[str, dict]
    findings: list[Finding]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def _quote(text: str, width: int = 60) -> str:
    """`text` as a Python literal (control characters visible), cut to `width`."""
    literal = repr(shown(text))
    return literal if len(literal) <= width else literal[: width - 4] + "...'"


def worst_first(findings: list[Finding]) -> dict[str, list[Finding]]:
    """Findings by kind, in KINDS' order, each kind's worst (highest weight) first."""
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_kind[finding.kind].append(finding)
    return {kind: sorted(by_kind[kind], key=lambda f: -f.weight)
            for kind in KINDS if kind in by_kind}  # fmt: skip


def _findings_json(findings: list[Finding]) -> dict[str, Any]:
    out = {}
    for kind, found in worst_first(findings).items():
        out[kind] = {
            "meaning": KINDS[kind],
            "count": len(found),
            "by_split": dict(Counter(f.split for f in found)),
            "examples": [{"split": f.split, "where": f.where, "text": shown(f.text)[:500],
                          "detail": shown(f.detail)} for f in found[:JSON_EXAMPLES]],
        }  # fmt: skip
    return out


def build_report(data: ReportData) -> dict[str, Any]:
    """The JSON-ready report."""
    return {
        "dataset": data.dataset,
        "stage": data.stage,
        "seconds": round(data.seconds, 2),
        "clean": not data.findings,
        "rows": data.rows,
        "splits": {
            series: {
                "rows": data.rows[series],
                "labels": data.labels.get(series, {}),
                "fields": {name: s.to_json() for name, s in fields.items()},
            }
            for series, fields in data.stats.items()
        },  # fmt: skip
        "tokens": {
            name: {"tokenizer": tok, "note": note} for name, (tok, note) in data.token_names.items()
        },  # fmt: skip
        "leaks": data.leaks,
        "findings": _findings_json(data.findings),
        "notes": data.notes,
        "options": data.options,
    }


# ----------------------------------------------------------------------------------------------
# The screen


def _labels_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return ""
    common = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    text = "  ".join(f"{label}: {n / total:.0%}" for label, n in common)
    return text + ("  ..." if len(counts) > 4 else "")


def _split_lines(data: ReportData) -> list[str]:
    several = len(data.token_names) > 1
    labels = {(series, name): f"{series} {name}" if several else series
              for series, fields in data.stats.items() for name in fields}  # fmt: skip
    width = max(len("split"), *(len(label) for label in labels.values())) + 2
    lines = [f"  {'split':<{width}}{'rows':>8}  {'chars med/p95/max':>18}  {'words med':>9}  "
             f"{'tokens med/max':>14}  {'unknown':>7}  labels"]  # fmt: skip
    for series, fields in data.stats.items():
        for name, s in fields.items():
            label = labels[series, name]
            c, t = describe(s.chars), describe(s.tokens.lengths)
            chars = f"{c['median']:.0f}/{c['p95']:.0f}/{c['max']}"
            tokens = f"{t['median']:.0f}/{t['max']}"
            lines.append(
                f"  {label:<{width}}{data.rows[series]:>8,}  {chars:>18}  "
                f"{describe(s.words)['median']:>9.0f}  {tokens:>14}  "
                f"{s.tokens.unknown_rate:>7.2%}  {_labels_text(data.labels.get(series, {}))}"
            )
    return lines


def _leak_lines(data: ReportData) -> list[str]:
    if not data.leaks:
        return ["leaks: no evaluation split to compare with train"]
    n, words = data.options.get("ngram", 8), data.options.get("min_words", 3)
    lines = [f"leaks (evaluation rows of {words}+ words found in train):"]
    for split, leak in data.leaks.items():
        verdict = "LEAK" if leak["leak"] else "no leak"
        lines.append(
            f"  {split}: {leak['overlapping_rows']:,} of {leak['rows']:,} rows ({leak['share']:.1%}"
            f"): {leak['cross_split_duplicate']:,} identical to a train row, "
            f"{leak['contained_in_train']:,} inside one, {leak['shared_phrase']:,} share a "
            f"phrase of {n} words -> {verdict}"
        )
    return lines


def _finding_lines(findings: list[Finding], examples: int) -> list[str]:
    by_kind = worst_first(findings)
    if not by_kind:
        return ["findings: none; the data is clean by every check"]
    rows = len({(f.split, f.row) for f in findings if f.row >= 0})
    lines = [f"findings: {plural(len(by_kind), 'kind')}, {plural(rows, 'row')}"]
    for kind, found in by_kind.items():
        lines.append(f"  {kind} ({len(found):,}): {KINDS[kind]}")
        for f in found[:examples]:
            line = f"      {f.where}  " + (f"{_quote(f.text, 50)}  " if f.text else "")
            line += shown(f.detail).replace("\n", " ")
            lines.append(line if len(line) <= LINE else line[: LINE - 3] + "...")
    return lines


def format_summary(data: ReportData, examples: int = 3) -> str:
    """One screen: the splits, the tokens, the leaks, the findings with the worst rows quoted."""
    rows = sum(n for series, n in data.rows.items() if series != "select")
    splits = plural(len(data.rows) - ("select" in data.rows), "split")
    head = (
        f"{data.dataset} ({data.stage} data-report): {splits}, {rows:,} rows, {data.seconds:.1f}s"
    )
    lines = [head, *_split_lines(data)]
    for name, (tok, note) in data.token_names.items():
        prefix = f"{name}: " if len(data.token_names) > 1 else ""
        lines.append(f"tokens: {prefix}{tok}; {note}")
    lines += [f"note: {note}" for note in data.notes]
    lines += _leak_lines(data)
    lines += _finding_lines(data.findings, examples)
    return "\n".join(lines)
