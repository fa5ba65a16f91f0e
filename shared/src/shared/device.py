"""Which device to run on, and in which precision.

`pick_device("auto")` prefers a CUDA GPU, then Apple's MPS, then the CPU. `autocast(device,
"bf16")` runs matrix multiplications in bfloat16 where the device supports it: on recent CPUs
that alone makes them about 3x faster than float32, with the weights and their updates kept in
float32. float16 needs a gradient scaler (on CUDA) because its range is narrow; bfloat16 has
float32's range and needs none. `pick_threads(0)` gives torch's CPU ops as many threads as
there are idle cores. torch is imported inside these functions only.
"""

import contextlib
import os
import time
from typing import Any, Literal

from shared.errors import ConfigError

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


def pick_device(name: str = "auto") -> Any:
    """A torch.device for "auto", "cpu", "cuda", "cuda:1" or "mps", checked to be usable."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device={name} but no CUDA GPU is visible; use --device=cpu or auto")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("--device=mps but MPS is not available here; use --device=cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"--device expects auto, cpu, cuda, cuda:N or mps, got {name!r}"
        ) from None


def bf16_supported(device: Any) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type in ("cpu", "mps")


def resolve_precision(precision: str, device: Any) -> str:
    """ "auto" becomes bf16 where the device has it, else fp32; fp16 only on CUDA."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise ConfigError(f"--precision=bf16 is not supported on {device}; use fp32")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision=fp16 needs a CUDA GPU (and a grad scaler); use bf16 or fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"--precision expects auto, fp32, bf16 or fp16, got {precision!r}")
    return precision


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager:
    """A context in which eligible ops run in `precision` ("fp32": a no-op)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _cpu_times(cpus: set[int]) -> tuple[int, int]:
    """(all, idle) clock ticks since boot, summed over `cpus`, from Linux's /proc/stat."""
    total = idle = 0
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq soft steal
                total += sum(ticks)
                idle += ticks[3] + ticks[4]
    return total, idle


def busy_cpus(sample_seconds: float = 0.25) -> float | None:
    """How many of this process's cores other programs keep busy right now (Linux; else None).

    Two readings of /proc/stat `sample_seconds` apart, while this process sleeps. The load
    average would do on any Unix, but it lags by a minute: a job that ended seconds ago still
    counts as running, and one that just started does not count yet.
    """
    try:
        cpus = os.sched_getaffinity(0)
        total0, idle0 = _cpu_times(cpus)
        time.sleep(sample_seconds)
        total1, idle1 = _cpu_times(cpus)
    except (AttributeError, OSError, ValueError):  # not Linux, or an unreadable /proc
        return None
    if total1 <= total0:
        return None
    return len(cpus) * (1 - (idle1 - idle0) / (total1 - total0))


def pick_threads(requested: int = 0) -> str:
    """Give torch's CPU ops `requested` threads, or with 0 as many as there are idle cores.

    torch splits each op over OpenMP threads that wait for one another when the op ends. If
    another program holds one of the cores, every op waits for the thread queued behind it:
    on a busy 2-core machine, 2 threads trained 7x slower than 1. Returns a note for the log.
    """
    import torch

    cores = torch.get_num_threads()
    if requested:
        torch.set_num_threads(requested)
        return f"{requested} threads"
    busy, source = busy_cpus(), "busy cores"
    if busy is None:
        try:
            busy, source = os.getloadavg()[0], "load average"
        except (AttributeError, OSError):  # Windows: neither is available
            return f"{cores} threads"
    free = max(1, min(cores, int(cores - busy + 0.5)))
    torch.set_num_threads(free)
    if free < cores:
        return f"{free} of {cores} threads ({source} {busy:.1f}; --threads=N to override)"
    return f"{cores} threads"
