"""Every attention test runs tiny models, so torch runs on one thread for each of them
(`one_thread`, in the root conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass
