"""Every mlp test leaves torch's thread count as it found it (`keep_threads`, in the root
conftest.py): the torch backend's `setup` sets it for the process, as a command should."""

import pytest


@pytest.fixture(autouse=True)
def _keep_threads(keep_threads):
    pass
