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
