"""`--dataset KIND:PATH`: every local format and the hub's layout, the split rule, bad rows."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.errors import UsageError
from shared.sources import (
    is_source,
    load_source,
    parse_source,
    text_corpus,
    training_texts,
    with_eval_split,
)

ROWS = [("a gripping, well-acted film", 1), ("dull", 0), ('he said "no"', 0), ("fine", 1)]


def write_rows(folder, kind: str, rows=ROWS, name: str = "data"):
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        path = folder / f"{name}.jsonl"
        lines = [json.dumps({"sentence": s, "label": y}) for s, y in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "csv":
        path = folder / f"{name}.csv"
        body = ['"{}",{}'.format(s.replace('"', '""'), y) for s, y in rows]
        path.write_text("sentence,label\n" + "\n".join(body) + "\n", encoding="utf-8")
    elif kind == "tsv":
        path = folder / f"{name}.tsv"
        body = [f"{s}\t{y}" for s, y in rows]
        path.write_text("sentence\tlabel\n" + "\n".join(body) + "\n", encoding="utf-8")
    else:
        path = folder / f"{name}.parquet"
        columns = {"sentence": [s for s, _ in rows], "label": [y for _, y in rows]}
        pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "csv", "tsv", "parquet"])
def test_every_table_format_gives_the_same_rows(kind, tmp_path):
    path = write_rows(tmp_path, kind)
    splits = load_source(f"{kind}:{path}", ["sentence", "label"], labels=(0, 1),
                         label_field="label")  # fmt: skip
    assert list(splits) == ["train"]
    assert splits["train"]["sentence"] == [s for s, _ in ROWS]  # quotes and commas intact
    assert [int(y) for y in splits["train"]["label"]] == [y for _, y in ROWS]


def test_a_folder_with_split_files_gives_those_splits_else_the_last_tenth(tmp_path):
    write_rows(tmp_path / "named", "jsonl", name="train")
    write_rows(tmp_path / "named", "jsonl", ROWS[:2], name="dev")
    splits = load_source(f"jsonl:{tmp_path / 'named'}", ["sentence"])
    assert sorted(splits) == ["train", "validation"] and len(splits["validation"]) == 2
    assert with_eval_split(splits)[1] == "validation"
    many = [(f"row {i}", i % 2) for i in range(30)]
    path = write_rows(tmp_path / "one", "csv", many)
    held, name = with_eval_split(load_source(f"csv:{path}", ["sentence"]))
    assert name == "validation" and len(held["train"]) == 27
    assert held["validation"]["sentence"] == ["row 27", "row 28", "row 29"]  # the file's end


def test_text_sources_keep_a_file_whole_for_a_language_model_or_give_its_lines(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("line one\n\nline two\n", encoding="utf-8")
    (tmp_path / "corpus" / "b.txt").write_text("0123456789" * 10, encoding="utf-8")
    assert training_texts(f"text:{tmp_path / 'corpus'}") == ["line one", "line two",
                                                              "0123456789" * 10]  # fmt: skip
    corpus = text_corpus(f"text:{tmp_path / 'corpus' / 'b.txt'}")
    assert corpus == {"train": "0123456789" * 9, "val": "0123456789"}


def test_the_hub_layout_loads_through_the_same_path(tmp_path, monkeypatch):
    """A folder laid out like a hub dataset (configs in README.md, parquet per split), read as
    `hf:FOLDER:CONFIG`: what `hf:Salesforce/wikitext:wikitext-103-raw-v1` does online."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "wikitext"
    configs = ["wikitext-103-raw-v1", "wikitext-2-raw-v1"]
    yaml = ["---", "configs:"]
    for config in configs:
        (root / config).mkdir(parents=True)
        yaml += [f"- config_name: {config}", "  data_files:"]
        for split, n in (("train", 20), ("validation", 3), ("test", 3)):
            texts = [f" = {config} {split} {i} = \n" if i % 2 else "" for i in range(n)]
            pq.write_table(pa.table({"text": texts}), root / config / f"{split}-00000.parquet")
            yaml += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join([*yaml, "---", ""]), encoding="utf-8")
    texts = training_texts(f"hf:{root}:wikitext-2-raw-v1")
    assert len(texts) == 10 and all("wikitext-2-raw-v1 train" in t for t in texts)  # blanks out
    corpus = text_corpus(f"hf:{root}:wikitext-103-raw-v1")
    assert "validation 1" in corpus["val"] and "train" not in corpus["val"]
    with pytest.raises(UsageError, match="'nope' not found"):
        load_source(f"hf:{root}:nope", ["text"])


def test_a_spec_is_a_registry_name_or_a_known_kind():
    assert not is_source("tinyshakespeare") and is_source("csv:x.csv")
    assert parse_source("hf:org/name:config").config == "config"
    assert parse_source("hf:org/name").config is None
    with pytest.raises(UsageError, match="unknown source kind 'xlsx'"):
        parse_source("xlsx:a.xlsx")
    with pytest.raises(UsageError, match="names no path"):
        parse_source("csv:")


def _error(spec: str, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        load_source(spec, ["sentence", "label"], **kwargs)
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


def test_bad_rows_are_named_by_file_and_line(tmp_path):
    bad_label = write_rows(tmp_path / "a", "csv", [("good", 1), ("odd", 7)])
    assert _error(f"csv:{bad_label}", labels=(0, 1), label_field="label") == (
        f"{bad_label}:3: label 7 is not one of 0, 1"
    )
    empty = write_rows(tmp_path / "b", "jsonl", [("good", 1), ("  ", 0)])
    assert _error(f"jsonl:{empty}").startswith(f"{empty}:2: an empty 'sentence'")
    missing = tmp_path / "c.jsonl"
    missing.write_text('{"sentence": "a", "label": 1}\n{"label": 0}\n', encoding="utf-8")
    assert _error(f"jsonl:{missing}").startswith(f"{missing}:2: no 'sentence'")
    latin1 = tmp_path / "d.csv"
    latin1.write_bytes("sentence,label\nok,1\ncaf\xe9,0\n".encode("latin-1"))
    assert _error(f"csv:{latin1}").startswith(f"{latin1}:3 is not valid UTF-8")
    column = write_rows(tmp_path / "e", "tsv")
    with pytest.raises(UsageError, match="has no field 'text'.*--text_field"):
        load_source(f"tsv:{column}", ["text"])
    assert "does not exist" in _error(f"csv:{tmp_path / 'nothing.csv'}")
    (tmp_path / "empty").mkdir()
    assert "holds no .parquet files" in _error(f"parquet:{tmp_path / 'empty'}")
