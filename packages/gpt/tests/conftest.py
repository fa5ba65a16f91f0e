"""Every gpt test runs tiny models, so torch runs on one thread for each of them
(`one_thread`, in the root conftest.py)."""

from pathlib import Path

import pytest

from shared.commands import run_command


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture(scope="session")
def train_tiny():
    """`train_tiny(text_file, run_name, n_embd=..., ...)`: a tiny `gpt train` run (2 layers, 2
    heads, fp32, one thread, no time limit) under the RUNS_DIR the caller has set."""

    def train(text_file: Path, run_name: str, *, n_embd: int = 32, block_size: int = 32,
              batch_size: int = 8, eval_iters: int = 1, max_steps: int = 30,
              extra: tuple[str, ...] = ()) -> None:  # fmt: skip
        args = ["--tokenizer=char", *extra, "--stage=gpt", "--model.n_layer=2", "--model.n_head=2",
                f"--model.n_embd={n_embd}", f"--model.block_size={block_size}",
                f"--batch_size={batch_size}", "--time_limit=0", f"--eval_iters={eval_iters}",
                "--sample_length=0", "--precision=fp32", "--device=cpu", "--threads=1",
                f"--text_file={text_file}", f"--max_steps={max_steps}",
                f"--run_name={run_name}"]  # fmt: skip
        assert run_command("train", args) == 0

    return train
