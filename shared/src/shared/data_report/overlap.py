"""Leaks: evaluation rows the training split already holds, whole, inside a longer row, or in part.

A model scored on rows it trained on is scored on its memory. Three ways a row leaks, strongest
first, each on text normalised for case and spacing:

    cross_split_duplicate   the evaluation row is a training row
    contained_in_train      it occurs inside a training row, word for word
    shared_phrase           it shares a phrase of `ngram` words (8 by default) with train

The second is SST-2's old split: its 2,000 dev rows were phrases held out of the training
split, but SST-2's rows are the phrases of parse trees, so each held-out phrase still sat inside
the training sentences it was cut from: 90% of those dev rows occur word for word in train, and
the accuracy measured on them ran 12 points above the accuracy on GLUE's dev set (whole
sentences that occur nowhere in train). Rows of fewer than `min_words` words are not counted:
"bad ." occurs inside many sentences without anything having leaked.

How it stays fast on 64,000 training rows: every `ngram`-word phrase of train is hashed into a
set (one pass), so a phrase is looked up in constant time. An evaluation row with a phrase that
is not in the set cannot lie inside a training row; only the rest (and rows shorter than
`ngram` words, which have no phrase to look up) are searched for in all of train's text joined
into one string, which `str.find` scans at memory speed.
"""

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.data_report.checks import Finding, normalized
from shared.data_report.rows import Row, Table

LEAK_KINDS = ("cross_split_duplicate", "contained_in_train", "shared_phrase")
_RELATION = {"cross_split_duplicate": "same as", "contained_in_train": "inside",
             "shared_phrase": "shared with"}  # fmt: skip


def phrases(words: list[str], n: int) -> Iterator[int]:
    """The hash of each run of `n` consecutive words."""
    for i in range(len(words) - n + 1):
        yield hash(tuple(words[i : i + n]))


class TrainIndex:
    """One text field of the training split, indexed for the three kinds of leak."""

    def __init__(self, texts: list[str], ngram: int) -> None:
        self.ngram = ngram
        rows = [normalized(t) for t in texts]
        self.exact: dict[str, int] = {}  # a normalised row -> the first training row that is it
        for i, row in enumerate(rows):
            self.exact.setdefault(row, i)
        self.grams = {g for row in rows for g in phrases(row.split(), ngram)}
        pieces = [f" {row} " for row in rows]
        self.starts, offset = [], 1
        for piece in pieces:
            self.starts.append(offset)
            offset += len(piece) + 1
        self.joined = "\n" + "\n".join(pieces) + "\n"  # no normalised row holds a newline

    def row_at(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def containing(self, text: str) -> int | None:
        """The first training row in which the normalised `text` occurs as whole words."""
        found = self.joined.find(f" {text} ")
        return None if found < 0 else self.row_at(found)

    def all_containing(self, text: str) -> list[int]:
        """Every training row in which `text` occurs as whole words."""
        rows, pattern, start = [], f" {text} ", 0
        while (found := self.joined.find(pattern, start)) >= 0:
            rows.append(self.row_at(found))
            start = self.joined.find("\n", found) + 1  # on from the next row
        return rows


@dataclass
class Leak:
    """What an evaluation row shares with train: the kind, the shared text, a training row."""

    kind: str
    shared: str  # the normalised text that train holds (the row, or one shared phrase)
    train_row: int
    detail: str


def find_leak(text: str, index: TrainIndex, min_words: int) -> Leak | None:
    """The strongest way the evaluation text `text` leaks from train, or None."""
    norm = normalized(text)
    words = norm.split()
    if len(words) < min_words:
        return None
    n = index.ngram
    grams = list(phrases(words, n))
    hits = [i for i, g in enumerate(grams) if g in index.grams]
    if norm in index.exact:
        return Leak("cross_split_duplicate", norm, index.exact[norm], "")
    if len(hits) == len(grams):  # every phrase in train (or none to look up): search for it
        row = index.containing(norm)
        if row is not None:
            return Leak("contained_in_train", norm, row, "")
    if not hits:
        return None
    phrase = " ".join(words[hits[0] : hits[0] + n])
    row = index.containing(phrase)
    if row is None:  # a hash collision: no such phrase after all
        return None
    return Leak("shared_phrase", phrase, row, f"{len(hits)} of its {len(grams)} {n}-word phrases")


@dataclass
class LeakReport:
    """The leak finder's answer: findings, a summary per evaluation split, train rows to drop."""

    findings: list[Finding] = field(default_factory=list)
    splits: dict[str, dict] = field(default_factory=dict)  # eval split -> counts, share, verdict
    train_sources: dict[int, str] = field(default_factory=dict)  # train row -> why it overlaps


def _quote_train(table: Table, name: str, row: int) -> str:
    train = table.splits["train"][row]
    text = " ".join(train.text(name).split())
    return f"{train.where}: {text[:90]!r}" + ("..." if len(text) > 90 else "")


@dataclass
class LeakOptions:
    ngram: int = 8
    min_words: int = 3
    leak_share: float = 0.05  # above this share of an evaluation split's rows: a leak
    find_sources: bool = False  # also list every training row that overlaps (for write-clean)


class SourceFinder:
    """The training rows that evaluation rows leak from, for `--write-clean` to drop.

    A training row is a source when it holds a leaking evaluation row whole, or holds one of its
    `ngram`-word phrases: dropping only the first kind would leave the phrases behind, and the
    clean copy would leak again. Whole texts are searched for one by one; phrases are gathered
    into a set and train is read once for all of them.
    """

    def __init__(self, indexes: dict[str, TrainIndex]) -> None:
        self.indexes = indexes
        self.phrases: dict[str, set[int]] = {name: set() for name in indexes}
        self.rows: dict[int, str] = {}  # train row -> why it is a source

    def add(self, row: Row, min_words: int) -> None:
        """The sources of one leaking evaluation row, in every text field."""
        for name, index in self.indexes.items():
            words = normalized(row.text(name)).split()
            if len(words) < min_words:
                continue
            shared = [g for g in phrases(words, index.ngram) if g in index.grams]
            self.phrases[name].update(shared)
            if len(shared) == max(0, len(words) - index.ngram + 1):  # it may lie whole inside
                for source in index.all_containing(" ".join(words)):
                    self.rows.setdefault(source, f"holds {row.where}")

    def finish(self, table: Table) -> dict[int, str]:
        """Add the training rows holding a gathered phrase; every source found."""
        for name, index in self.indexes.items():
            wanted = self.phrases[name]
            for i, text in enumerate(table.texts("train", name) if wanted else []):
                if any(g in wanted for g in phrases(normalized(text).split(), index.ngram)):
                    self.rows.setdefault(i, "shares a phrase with an evaluation row")
        return self.rows


def _row_leak(table: Table, split: str, i: int, indexes: dict[str, TrainIndex],
              min_words: int) -> tuple[str, Leak] | None:  # fmt: skip
    """(text field, leak) of row `i`: its strongest leak over the text fields, or None."""
    row = table.splits[split][i]
    found = [(name, leak) for name, index in indexes.items()
             if (leak := find_leak(row.text(name), index, min_words)) is not None]  # fmt: skip
    return min(found, key=lambda pair: LEAK_KINDS.index(pair[1].kind), default=None)


def _split_leaks(table: Table, split: str, indexes: dict[str, TrainIndex], options: LeakOptions,
                 report: LeakReport, sources: SourceFinder | None) -> None:  # fmt: skip
    """One finding for each row of `split` that leaks, and the split's counts and verdict."""
    rows = table.splits[split]
    counts = dict.fromkeys(LEAK_KINDS, 0)
    for i, row in enumerate(rows):
        found = _row_leak(table, split, i, indexes, options.min_words)
        if found is None:
            continue
        name, leak = found
        counts[leak.kind] += 1
        detail = f"{leak.detail}; " if leak.detail else ""
        detail += f"{_RELATION[leak.kind]} {_quote_train(table, name, leak.train_row)}"
        if len(indexes) > 1:
            detail = f"{name}: {detail}"
        report.findings.append(Finding(leak.kind, split, i, row.where, row.text(name), detail,
                                       len(leak.shared.split())))  # fmt: skip
        if sources is not None:
            sources.add(row, options.min_words)
    flagged = sum(counts.values())
    share = flagged / len(rows) if rows else 0.0
    report.splits[split] = {
        "rows": len(rows), "overlapping_rows": flagged, "share": round(share, 4),
        **counts, "leak": share > options.leak_share,
    }  # fmt: skip


def find_leaks(table: Table, options: LeakOptions) -> LeakReport:
    """Every evaluation split's rows checked against the training split, field by field."""
    report = LeakReport()
    if not table.eval_splits:
        return report
    indexes = {name: TrainIndex(table.texts("train", name), options.ngram)
               for name in table.text_fields}  # fmt: skip
    sources = SourceFinder(indexes) if options.find_sources else None
    for split in table.eval_splits:
        _split_leaks(table, split, indexes, options, report, sources)
    if sources is not None:
        report.train_sources = sources.finish(table)
    return report
