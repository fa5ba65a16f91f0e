"""Thread choice (idle cores from /proc/stat, and the fallbacks) and the bf16 verdict both ways."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from shared import device  # noqa: E402


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


# ----------------------------------------------------------------------------------------------
# The bf16 verdict: one per process, from the instruction set and a timed matmul


@pytest.fixture
def fresh_verdict():
    """Forget the cached verdict before and after, so a faked one does not leak."""
    device.cpu_bf16_verdict.cache_clear()
    yield
    device.cpu_bf16_verdict.cache_clear()


def fake_matmul_seconds(fp32: float, bf16: float):
    return lambda dtype, **_: bf16 if dtype == torch.bfloat16 else fp32


def test_an_avx2_only_cpu_gets_fp32_without_timing(monkeypatch, fresh_verdict):
    monkeypatch.setattr(device, "cpu_flags", lambda: {"sse4_2", "avx", "avx2", "fma"})
    monkeypatch.setattr(device, "_matmul_seconds", lambda *a, **k: pytest.fail("timed anyway"))
    verdict = device.cpu_bf16_verdict()
    assert not verdict.native and "emulated" in verdict.reason
    cpu = torch.device("cpu")
    assert device.resolve_precision("auto", cpu) == "fp32"
    assert device.fast_dtype(cpu) == torch.float32
    assert device.describe_precision("auto", cpu).startswith("fp32 (auto: this CPU has no AVX-512")
    # Asked for explicitly, bf16 still runs, with the warning in the log line.
    assert device.resolve_precision("bf16", cpu) == "bf16"
    assert "--precision=auto picks fp32" in device.describe_precision("bf16", cpu)


def test_a_cpu_with_native_bf16_gets_bf16(monkeypatch, fresh_verdict):
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512f", "amx_bf16"})
    monkeypatch.setattr(device, "_matmul_seconds", fake_matmul_seconds(fp32=2e-3, bf16=1e-3))
    cpu = torch.device("cpu")
    assert device.cpu_bf16_verdict().native
    assert device.resolve_precision("auto", cpu) == "bf16"
    assert device.fast_dtype(cpu) == torch.bfloat16
    assert device.describe_precision("auto", cpu) == (
        "bf16 (auto: native bf16 on this CPU (a bf16 matmul ran 2.0x as fast as fp32))"
    )
    assert device.describe_precision("fp32", cpu) == "fp32"


def test_flags_that_promise_bf16_are_checked_by_timing(monkeypatch, fresh_verdict):
    """AMX in /proc/cpuinfo, but oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA): bf16 is slow."""
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512_bf16", "amx_bf16"})
    monkeypatch.setattr(device, "_matmul_seconds", fake_matmul_seconds(fp32=1e-3, bf16=8e-2))
    verdict = device.cpu_bf16_verdict()
    assert not verdict.native
    assert verdict.reason == "bf16 is emulated on this CPU (a bf16 matmul ran 80x slower than fp32)"
    assert device.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_the_verdict_is_taken_once_per_process(monkeypatch, fresh_verdict):
    calls = []

    def timed(dtype, **_):
        calls.append(dtype)
        return 1e-3

    monkeypatch.setattr(device, "cpu_flags", lambda: None)  # e.g. an ARM CPU or macOS
    monkeypatch.setattr(device, "_matmul_seconds", timed)
    for _ in range(3):
        device.resolve_precision("auto", torch.device("cpu"))
        device.fast_dtype(torch.device("cpu"))
    assert len(calls) == 2  # one float32 and one bfloat16 timing, then the cached verdict


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n")
    assert device.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "fma"}
    assert device.cpu_flags(str(tmp_path / "missing")) is None


def test_the_real_verdict_agrees_with_this_cpu(fresh_verdict):
    """No AVX-512 bf16 or AMX flag: never native. With them, a bf16 matmul far slower than
    fp32 (emulated) must not be called native."""
    flags = device.cpu_flags()
    verdict = device.cpu_bf16_verdict()
    if flags is not None and "avx2" in flags and not flags & {"avx512_bf16", "amx_bf16"}:
        assert not verdict.native and "no AVX-512 bf16 or AMX" in verdict.reason
    fp32, bf16 = device._matmul_seconds(torch.float32), device._matmul_seconds(torch.bfloat16)
    if bf16 > 10 * fp32:  # unmistakably emulated
        assert not verdict.native


def test_the_verdict_leaves_the_global_generator_alone(fresh_verdict):
    """Timing the matmuls must not draw from torch's global generator: a run seeded before the
    first verdict would otherwise start from other weights than the same run seeded after it."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    device.cpu_bf16_verdict()
    assert torch.equal(torch.rand(3), expected)


def test_promised_bf16_survives_a_noisy_timing_but_unpromised_needs_a_clear_gain(
    monkeypatch, fresh_verdict
):
    """On a busy machine an AMX CPU's bf16 matmul once timed only 1.2x fp32: still native. A CPU
    with no flags to read (ARM, macOS) must show a clear gain before autocast is used."""
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    monkeypatch.setattr(device, "_matmul_seconds", fake_matmul_seconds(fp32=1.2e-3, bf16=1e-3))
    assert device.cpu_bf16_verdict().native
    device.cpu_bf16_verdict.cache_clear()
    monkeypatch.setattr(device, "cpu_flags", lambda: None)
    verdict = device.cpu_bf16_verdict()
    assert not verdict.native and "gains too little" in verdict.reason
