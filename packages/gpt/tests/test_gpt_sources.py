"""gpt reads data from any source: a jsonl corpus for `train`, hub-style chat rows for `sft`."""

import json

import pytest

from gpt.chat.sft import source_conversations
from gpt.data import load_training_text
from shared.errors import UsageError


def test_a_jsonl_corpus_with_its_own_field_and_validation_split(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps({"body": f"line {i}", "id": i}) for i in range(5)), encoding="utf-8"
    )
    (tmp_path / "validation.jsonl").write_text(json.dumps({"body": "held"}), encoding="utf-8")
    splits, used, note = load_training_text(f"jsonl:{tmp_path}", text_field="body")
    assert splits == {"train": "line 0\nline 1\nline 2\nline 3\nline 4", "val": "held"}
    assert used == f"jsonl:{tmp_path}" and note is None
    with pytest.raises(UsageError, match="has no field 'text'"):
        load_training_text(f"jsonl:{tmp_path}")


def test_text_file_is_the_older_spelling_of_a_text_source(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")
    assert load_training_text("ignored", text_file=path)[0] == load_training_text(f"text:{path}")[0]


def test_chat_rows_from_a_source_and_a_bad_row_named(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]},
            {"messages": [{"role": "user", "content": "hi"}]}]  # fmt: skip
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    (conversation,) = source_conversations(f"jsonl:{path}", "messages")
    assert [(m.role, m.content) for m in conversation] == [("user", "2+2?"), ("assistant", "4")]
    path.write_text("\n".join(map(json.dumps, rows)) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"row 2: no assistant message"):
        source_conversations(f"jsonl:{path}", "messages")
