"""Thread choice: idle cores measured from /proc/stat, and the fallbacks when it is missing."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from shared import device  # noqa: E402


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc/stat")
def test_busy_cpus_sees_a_spinning_process():
    cpu = min(os.sched_getaffinity(0))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spinner.pid, {cpu})
        busy = device.busy_cpus(sample_seconds=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None
    assert 0.7 <= busy <= len(os.sched_getaffinity(0)) + 0.01


def test_pick_threads_leaves_the_busy_cores(monkeypatch, keep_threads):
    torch.set_num_threads(2)
    monkeypatch.setattr(device, "busy_cpus", lambda: 1.0)
    note = device.pick_threads(0)
    assert torch.get_num_threads() == 1
    assert note.startswith("1 of 2 threads (busy cores 1.0")


def test_pick_threads_uses_all_cores_when_idle(monkeypatch, keep_threads):
    torch.set_num_threads(2)
    monkeypatch.setattr(device, "busy_cpus", lambda: 0.2)
    assert device.pick_threads(0) == "2 threads"
    assert torch.get_num_threads() == 2


def test_pick_threads_falls_back_to_the_load_average(monkeypatch, keep_threads):
    torch.set_num_threads(2)
    monkeypatch.setattr(device, "busy_cpus", lambda: None)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.0, 0.0, 0.0), raising=False)
    assert device.pick_threads(0).startswith("1 of 2 threads (load average 3.0")


def test_pick_threads_takes_an_explicit_count(keep_threads):
    assert device.pick_threads(3) == "3 threads"
    assert torch.get_num_threads() == 3
