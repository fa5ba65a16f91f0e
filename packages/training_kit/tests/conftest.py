"""What the kit's command tests share: a small text for gpt's task and a runs folder of their
own (`RUNS_DIR`), so no test writes into the checkout's runs/."""

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
