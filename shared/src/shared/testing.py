"""Helpers for the tests of every stage (imported by tests only, never by library code)."""

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.errors import DatasetError


@contextlib.contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


def dataset_or_skip(name: str) -> Path:
    """The dataset's verified folder from the cache or mirror, or skip the test with a reason.

    Tests never download: DATASETS_OFFLINE is set for the lookup.
    """
    import pytest

    from shared import datasets

    previous = os.environ.get("DATASETS_OFFLINE")
    os.environ["DATASETS_OFFLINE"] = "1"
    try:
        return datasets.locate(name)
    except DatasetError as error:
        pytest.skip(f"dataset {name!r} is neither cached nor mirrored: {error}")
    finally:
        if previous is None:
            del os.environ["DATASETS_OFFLINE"]
        else:
            os.environ["DATASETS_OFFLINE"] = previous


def solved_source(exercise: Any, number: int, stage: str) -> str:
    """The skeleton `exercise start` writes, with its stub replaced by `exercise solution`'s text:
    what a learner who pastes the solution has in the file."""
    from shared.exercises import skeleton, solution

    text = skeleton(exercise, number, stage)
    start = text.index(f"\ndef {exercise.name}(")
    return text[: start + 1] + solution(exercise)


def check_source(exercise: Any, source: str, folder: Path) -> Any:
    """Write `source` as the learner's file in `folder` and check it (a `CheckResult`)."""
    from shared.exercises import check_file

    path = folder / f"{exercise.slug}.py"
    path.write_text(source, encoding="utf-8")
    return check_file(exercise, path)


def wrong_variant(exercise: Any, number: int, stage: str, old: str, new: str) -> str:
    """The pasted solution with one deliberate mistake: `old` (which must occur) becomes `new`."""
    source = solved_source(exercise, number, stage)
    body = source[source.index(f"\ndef {exercise.name}(") :]
    assert old in body, f"{old!r} is not in the solution of {stage} exercise {number}"
    return source.replace(body, body.replace(old, new, 1))
