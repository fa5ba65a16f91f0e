"""`data-report`: each fault planted in a small file is named, a clean file gets a clean report,
the old SST-2 split's leak is found (and GLUE's dev set is not flagged), `--write-clean` drops
what the report names, and a dataset that cannot be read stops with a UsageError."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from shared.config import parse_config
from shared.data_report import (
    DataReportConfig,
    StageData,
    Vocabulary,
    analyse,
    characters,
    data_report_command,
)
from shared.data_report.checks import mojibake, repeated_char
from shared.data_report.rows import read_table
from shared.data_report.summary import format_summary
from shared.errors import UsageError
from shared.testing import dataset_or_skip

STAGE = StageData("shared", "")


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("RUNS_DIR", str(folder))
    return folder


def sentences(n: int, seed: int) -> list[str]:
    """`n` made-up sentences of 6-12 words: no two share a phrase, none is short or odd."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("bdfglmnprst") + rng.choice("aeiou") for _ in range(3))
             for _ in range(400)]  # fmt: skip
    return [" ".join(rng.choices(vocab, k=rng.randint(6, 12))) + " ." for _ in range(n)]


def clean_rows() -> tuple[list[str], list[str]]:
    """(train, dev) `sentence<TAB>label` lines, labels alternating."""
    texts = sentences(50, seed=0)
    rows = [f"{t}\t{i % 2}" for i, t in enumerate(texts)]
    return rows[:40], rows[40:]


def write_tsv(folder: Path, train: list[str], dev: list[str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("dev", dev)):
        (folder / f"{name}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return f"tsv:{folder}"


def report(spec: str, *options: str, stage: StageData = STAGE):
    cfg = parse_config(DataReportConfig, ["--dataset", spec, *options])
    return analyse(stage, cfg)


def kinds(data) -> Counter:
    return Counter(f.kind for f in data.findings)


# ----------------------------------------------------------------------------------------------
# Clean, and each fault


def test_a_clean_file_gets_a_clean_report(tmp_path):
    table, data, _ = report(write_tsv(tmp_path / "clean", *clean_rows()))
    assert list(table.splits) == ["train", "validation"]
    assert data.rows == {"train": 40, "validation": 10}
    assert data.findings == [], format_summary(data)
    assert data.labels["train"] == {"0": 20, "1": 20}
    assert data.leaks["validation"]["overlapping_rows"] == 0
    assert data.leaks["validation"]["leak"] is False
    assert "findings: none" in format_summary(data)


PLANTED = {  # fault -> (train lines, dev lines, options, the kind the report must name)
    "empty row": ([" \t1"], [], [], "empty"),
    "very short row": (["ok\t1"], [], [], "too_short"),
    "very long row": ([" ".join(["longword"] * 200) + "\t0"], [], [], "too_long"),
    "one character repeated": (["!!!!!!!!!!\t1"], [], [], "repeated_char"),
    "control characters": (["a bell \x07 rings in this row\t0"], [], [], "control_chars"),
    "zero-width space": (["an invisible\u200bspace sits here\t0"], [], [], "control_chars"),
    "mojibake": (["the cafÃ© was rather good today\t1"], [], [], "mojibake"),
    "label outside the set": ([], ["a perfectly fine sentence here\t2"], [], "bad_label"),
    "label outside --labels": (
        ["another fine sentence here\tpos"],
        [],
        ["--labels", "0,1"],
        "bad_label",
    ),
    "a missing field": (["no label on this row at all"], [], [], "unreadable"),
}


@pytest.mark.parametrize("fault", sorted(PLANTED))
def test_each_planted_fault_is_named(fault, tmp_path):
    extra_train, extra_dev, options, kind = PLANTED[fault]
    train, dev = clean_rows()
    spec = write_tsv(tmp_path / "data", train + extra_train, dev + extra_dev)
    _, data, _ = report(spec, *options)
    found = [f for f in data.findings if f.kind == kind]
    assert len(found) == 1, format_summary(data)
    split_file = "train.tsv" if extra_train else "dev.tsv"
    line = 2 + (len(train) if extra_train else len(dev))  # after the header and clean rows
    assert found[0].where.endswith(f"{split_file}:{line}")
    assert kind in format_summary(data)


def test_duplicates_within_and_across_splits(tmp_path):
    train, dev = clean_rows()
    text = train[3].split("\t")[0]
    spec = write_tsv(tmp_path / "data", [*train, f"{text.upper()}\t1", f"{text}\t0"],
                     [*dev, f"  {text}  \t1"])  # fmt: skip
    _, data, _ = report(spec)
    assert kinds(data)["duplicate"] == 2  # case and spacing do not hide a copy
    assert kinds(data)["conflicting_labels"] == 1  # train[3]'s label is 1; the second copy's 0
    assert kinds(data)["cross_split_duplicate"] == 1
    assert data.leaks["validation"]["cross_split_duplicate"] == 1


def test_bytes_that_are_not_utf8_and_a_file_of_two_encodings(tmp_path):
    train, dev = clean_rows()
    folder = tmp_path / "data"
    write_tsv(folder, train, dev)
    with open(folder / "train.tsv", "ab") as fh:
        fh.write("un café crème très doux\t1\n".encode())  # UTF-8
        fh.write("un café crème très amer\t0\n".encode("latin-1"))  # the same file, Latin-1
    _, data, _ = report(f"tsv:{folder}")
    invalid = [f for f in data.findings if f.kind == "invalid_utf8"]
    assert len(invalid) == 1 and invalid[0].where.endswith("train.tsv:43")
    assert "0xe9" in invalid[0].detail and "café" in invalid[0].detail  # what cp1252 reads
    assert kinds(data)["mixed_encoding"] == 1
    assert kinds(data)["mojibake"] == 0  # the stand-in for a bad byte is not another fault


def test_jsonl_rows_without_the_key_and_lines_that_do_not_parse(tmp_path):
    rows = [{"text": t, "label": i % 2} for i, t in enumerate(sentences(20, seed=1))]
    bad = ['{"label": 1}', "{not json", '{"text": null, "label": 0}']
    lines = [json.dumps(r) for r in rows] + bad
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    _, data, _ = report(f"jsonl:{tmp_path / 'd.jsonl'}")
    assert kinds(data) == Counter({"missing_field": 2, "unreadable": 1}), format_summary(data)
    assert "held-out" in data.leaks  # one file: the last 10% that training holds out


def test_label_imbalance_and_unknown_characters(tmp_path):
    texts = sentences(60, seed=2)
    train = [f"{t}\t{int(i < 3)}" for i, t in enumerate(texts[:50])]  # 3 of 50 positive
    dev = [f"{t} жжж\t{i % 2}" for i, t in enumerate(texts[50:])]
    chars = StageData("shared", "", lambda field, texts: Vocabulary("chars", characters, texts))
    _, data, _ = report(write_tsv(tmp_path / "data", train, dev), stage=chars)
    imbalance = [f for f in data.findings if f.kind == "label_imbalance"]
    assert [f.split for f in imbalance] == ["train"] and "47" in imbalance[0].detail
    assert data.stats["train"]["sentence"].tokens.unknown_rate == 0
    assert data.stats["validation"]["sentence"].tokens.unknown_rate > 0.03  # " жжж" is unknown


def test_the_text_checks():
    assert mojibake("crÃ¨me brÃ»lÃ©e") and mojibake("donâ€™t") and mojibake("a \ufffd b")
    assert not mojibake("crème brûlée, don’t, Ä, Ö, naïve")
    assert repeated_char("!!!!!!!!") and repeated_char("- - - -")
    assert not repeated_char("!!") and not repeated_char("aab")


# ----------------------------------------------------------------------------------------------
# Leaks: SST-2's old split against GLUE's dev set


def _sst2_rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[1:]


def _containing(rows: list[str], phrases: list[str]) -> list[str]:
    """The first row holding each phrase (word for word), as the old split's train held them."""
    joined = "\n" + "\n".join(f" {r.split(chr(9))[0].strip()} " for r in rows) + "\n"
    found = []
    for phrase in phrases:
        at = joined.find(f" {phrase.split(chr(9))[0].strip()} ")
        if at >= 0:
            found.append(rows[joined.count("\n", 0, at) - 1])
    return found


def test_the_old_sst2_split_leaks_and_glue_dev_does_not(tmp_path):
    """dev.tsv's rows were cut out of the training sentences: most sit inside a training row.
    GLUE's dev sentences occur nowhere in train. Both against the same training rows."""
    mirror = dataset_or_skip("sst2")
    train_all, old_dev = _sst2_rows(mirror / "train.tsv"), _sst2_rows(mirror / "dev.tsv")[:300]
    glue_dev = _sst2_rows(mirror / "glue_dev.tsv")[:300]
    train = list(dict.fromkeys(train_all[::25] + _containing(train_all, old_dev)))
    _, old, _ = report(write_tsv(tmp_path / "old", train, old_dev))
    _, glue, _ = report(write_tsv(tmp_path / "glue", train, glue_dev))

    leak = old.leaks["validation"]
    assert leak["leak"] and leak["share"] > 0.5, leak
    assert leak["contained_in_train"] > 0.5 * len(old_dev)
    assert "validation: " in format_summary(old) and "-> LEAK" in format_summary(old)
    quoted = [f for f in old.findings if f.kind == "contained_in_train"]
    assert quoted and "inside" in quoted[0].detail and "train.tsv:" in quoted[0].detail
    assert not glue.leaks["validation"]["leak"]
    assert glue.leaks["validation"]["share"] < 0.02, glue.leaks


# ----------------------------------------------------------------------------------------------
# The command: the run folder, --write-clean, --select_rows, and what it refuses


def test_the_command_writes_the_report_and_a_clean_copy(tmp_path, runs, capsys):
    train, dev = clean_rows()
    text = train[0].split("\t")[0]
    bad_train = [*train, " \t1", "!!!!!!!!!!\t0", train[5]]
    spec = write_tsv(tmp_path / "data", bad_train, [*dev, f"{text}\t1"])
    out = tmp_path / "clean"
    data_report_command(STAGE, ["--dataset", spec, "--write-clean", str(out),
                                "--select_rows", "5", "--run_name", "r"])  # fmt: skip
    printed = capsys.readouterr().out
    folder = runs / "shared" / "data-report" / "r"
    saved = json.loads((folder / "report.json").read_text())
    assert (folder / "lengths.png").stat().st_size > 1000
    assert saved["rows"] == {"train": 43, "validation": 11, "select": 5}
    assert set(saved["findings"]) == {"empty", "repeated_char", "duplicate",
                                      "cross_split_duplicate"}  # fmt: skip
    assert saved["findings"]["empty"]["examples"][0]["where"].endswith("train.tsv:42")
    assert "select" in saved["splits"] and "select" in printed
    assert "dropped: " in printed and "overlaps_eval 1" in printed  # train[0], in dev too
    assert sorted(p.name for p in out.iterdir()) == ["train.tsv", "validation.tsv"]
    _, again, _ = report(f"tsv:{out}")
    assert again.findings == [], format_summary(again)
    assert again.rows == {"train": 39, "validation": 11}  # 43 - empty, !!!, copy, leak source


def test_a_dataset_that_cannot_be_read_is_a_usage_error(tmp_path, runs):
    with pytest.raises(UsageError, match="does not exist"):
        data_report_command(STAGE, ["--dataset", f"tsv:{tmp_path / 'nowhere'}"])
    spec = write_tsv(tmp_path / "data", *clean_rows())
    with pytest.raises(UsageError, match="no field 'review'"):
        data_report_command(STAGE, ["--dataset", spec, "--text_field", "review"])
    assert not runs.exists(), "a refused report wrote a run folder"
    assert read_table(spec, [], "none").label_field is None


def test_a_clean_text_file_keeps_its_paragraphs(tmp_path):
    lines = sentences(12, seed=3)
    text = "\n".join([*lines[:5], "", "", "!!!!!!!!", *lines[5:10], "", *lines[10:]]) + "\n"
    (tmp_path / "t.txt").write_text(text)
    out = tmp_path / "clean.txt"
    data_report_command(STAGE, ["--dataset", f"text:{tmp_path / 't.txt'}", "--write-clean",
                                str(out)])  # fmt: skip
    assert out.read_text() == text.replace("!!!!!!!!\n", "")
