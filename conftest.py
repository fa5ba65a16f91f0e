"""Fixtures every test folder may use; pytest finds this file at the repository root.

A stage whose tests all want one of them uses it automatically through a conftest.py of its own
in its tests/ folder (see packages/gpt/tests/conftest.py); a single test asks for it by name.
"""

import pytest


@pytest.fixture
def keep_threads():
    """Whatever the test does to torch's thread count is undone afterwards."""
    import torch  # here, not at the top: the numpy-only stages' tests never import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread(keep_threads):
    """Tiny models on one thread: splitting a small matmul across threads costs more than it
    saves, and on a busy machine (a CI runner) OpenMP's threads stall waiting for each other."""
    import torch

    torch.set_num_threads(1)
