"""What the kit's tests share: a small text for gpt's task, two made-up tasks and tiny options
for t5's, and a runs folder of their own (`RUNS_DIR`), so no test writes into the checkout's
runs/."""

import random
from pathlib import Path

import pytest

TEXT = "To be, or not to be, that is the question.\n" * 60


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def tiny_t5(tmp_path):
    """optimizer -> t5 finetune's options for a tiny model on two made-up tasks."""
    return lambda optimizer: write_t5_tasks(tmp_path, optimizer)


def write_t5_tasks(folder: Path, optimizer: str) -> list[str]:
    """Two made-up text-to-text tasks (is "good" among the words? which word comes first?)
    and t5's tiny options: one model, mixed batches, greedy decoding in the evaluation."""
    rng = random.Random(2)
    words = ["cat", "dog", "sun", "red", "blue", "tree", "car", "sea"]
    for split, n in (("train", 300), ("test", 20)):
        keyword, first = [], []
        for _ in range(n):
            row = rng.choices(words, k=rng.randint(2, 5))
            label = rng.random() < 0.5
            if label:
                row.insert(rng.randrange(len(row) + 1), "good")
            keyword.append(f"keyword: {' '.join(row)}\t{'yes' if label else 'no'}")
            first.append(f"first: {' '.join(row)}\t{row[0]}")
        (folder / f"keyword.{split}.tsv").write_text("\n".join(keyword) + "\n")
        (folder / f"first.{split}.tsv").write_text("\n".join(first) + "\n")
    return [f"--data_dir={folder}", "--tasks=keyword,first", "--init=none", "--vocab_size=48",
            "--num_sentinels=4", "--select_rows=20", "--batch_size=16", "--warmup_steps=2",
            f"--optimizer={optimizer}", "--max_input_length=16", "--max_target_length=8",
            "--model.d_model=32", "--model.num_heads=2", "--model.d_kv=16", "--model.d_ff=64",
            "--model.num_layers=1", "--model.num_decoder_layers=1", "--model.dropout=0",
            "--max_steps=4", "--time_limit=0", "--eval_interval=4", "--precision=fp32",
            "--device=cpu", "--threads=1"]  # fmt: skip
