"""Every attention test runs tiny models: torch on one thread (`one_thread`, in the root
conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass
