"""Which device to run on, and in which precision.

`pick_device("auto")` prefers a CUDA GPU, then Apple's MPS, then the CPU. `autocast(device,
"bf16")` runs matrix multiplications in bfloat16, with the weights and their updates kept in
float32. Whether that pays depends on the chip: a CPU with AMX or AVX-512 bf16 instructions
multiplies bfloat16 matrices 2-3x faster than float32, but an AVX2-only CPU (most laptops, many
cloud machines) has no bf16 arithmetic and emulates it, about 80x slower than float32. So one
verdict per process, `bf16_verdict(device)`, decides: "auto" picks bf16 only where it is native,
and every explicit bf16 cast (Muon's orthogonalisation, say) asks `fast_dtype(device)` instead
of hard-coding bfloat16. float16 needs a gradient scaler (on CUDA) because its range is narrow;
bfloat16 has float32's range and needs none. `pick_threads(0)` gives torch's CPU ops as many
threads as there are idle cores. torch is imported inside these functions only.
"""

import contextlib
import functools
import os
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Bf16Verdict:
    """Whether bfloat16 arithmetic is native (fast) here, and the evidence, for the log."""

    native: bool
    reason: str


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The x86 instruction-set flags Linux reports, or None where there are none to read."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None  # not Linux, or not x86 (ARM lists "Features"): the timing decides


def _matmul_seconds(dtype: Any, n: int = 256, repeats: int = 3) -> float:
    """Best time of an n x n matmul in `dtype`, after one warm-up call."""
    import torch

    own = torch.Generator().manual_seed(0)  # not the global generator: a run's seed stays intact
    a = torch.randn(n, n, generator=own).to(dtype)
    b = torch.randn(n, n, generator=own).to(dtype)
    a @ b  # the first call builds the kernel (oneDNN caches it)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def cpu_bf16_verdict() -> Bf16Verdict:
    """Decide once per process whether this CPU does bf16 arithmetic natively.

    The instruction set answers "no" for free: an x86 CPU without AVX-512 bf16 or AMX has no
    bf16 arithmetic. Otherwise a matmul of each kind is timed (about 0.1 s), because the flags
    can promise more than the libraries deliver: oneDNN may be capped at AVX2
    (ONEDNN_MAX_CPU_ISA) or the CPU may be virtualised. The two cases lie far apart (native
    bf16 measured 1.8-3.9x as fast as fp32 here, emulated 70-100x slower), while one timing on
    a busy machine can be off by 2x. So where the flags promise bf16, it counts as native
    unless it ran more than 2x slower than fp32 (emulated); where there are no flags to read
    (ARM, macOS), it must have run clearly faster (by 20%) to be worth autocast's rounding.
    """
    import torch

    flags = cpu_flags()
    promised = flags is not None and bool(flags & {"avx512_bf16", "amx_bf16"})
    if flags is not None and "avx2" in flags and not promised:
        return Bf16Verdict(False, "this CPU has no AVX-512 bf16 or AMX: bf16 would be emulated")
    fp32 = _matmul_seconds(torch.float32)
    bf16 = _matmul_seconds(torch.bfloat16)
    speedup = fp32 / bf16
    if speedup > (0.5 if promised else 1.2):
        return Bf16Verdict(
            True, f"native bf16 on this CPU (a bf16 matmul ran {speedup:.1f}x as fast as fp32)"
        )
    if speedup >= 0.5:
        return Bf16Verdict(
            False, f"bf16 gains too little on this CPU (a bf16 matmul ran {speedup:.2f}x fp32)"
        )
    return Bf16Verdict(
        False,
        f"bf16 is emulated on this CPU (a bf16 matmul ran {1 / speedup:.0f}x slower than fp32)",
    )


def bf16_verdict(device: Any) -> Bf16Verdict:
    """Whether bf16 is native on `device`: the CPU's cached verdict, or the GPU's own answer."""
    import torch

    if device.type == "cuda":
        # Ampere (compute capability 8) and later compute in bf16; torch's plain
        # is_bf16_supported() also says yes where it would only emulate it (T4, V100).
        if torch.cuda.get_device_capability(device)[0] >= 8:
            return Bf16Verdict(True, "this GPU has bf16 arithmetic")
        return Bf16Verdict(False, "this GPU would emulate bf16 (compute capability below 8)")
    if device.type == "mps":
        if torch.backends.mps.is_macos_or_newer(14, 0):
            return Bf16Verdict(True, "Apple GPUs have bf16 from macOS 14")
        return Bf16Verdict(False, "MPS has bf16 only from macOS 14")
    return cpu_bf16_verdict()


def bf16_supported(device: Any) -> bool:
    """Whether torch can run bf16 on `device` at all (natively or emulated)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type in ("cpu", "mps")


def fast_dtype(device: Any) -> Any:
    """The dtype for an explicit low-precision cast: bfloat16 where native, else float32."""
    import torch

    return torch.bfloat16 if bf16_verdict(device).native else torch.float32


def resolve_precision(precision: str, device: Any) -> str:
    """ "auto" becomes bf16 where bf16 is native on the device, else fp32; fp16 only on CUDA."""
    if precision == "auto":
        return "bf16" if bf16_verdict(device).native else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise ConfigError(f"--precision=bf16 is not supported on {device}; use fp32")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision=fp16 needs a CUDA GPU (and a grad scaler); use bf16 or fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"--precision expects auto, fp32, bf16 or fp16, got {precision!r}")
    return precision


def describe_precision(requested: str, device: Any) -> str:
    """The precision that will run and why, in one phrase for the log ("fp32 (auto: ...)")."""
    resolved = resolve_precision(requested, device)
    if resolved == "fp16" or device.type == "cuda" and requested != "auto":
        return resolved
    verdict = bf16_verdict(device)
    if requested == "auto":
        return f"{resolved} (auto: {verdict.reason})"
    if resolved == "bf16" and not verdict.native:
        return f"bf16 (as asked, though {verdict.reason}; --precision=auto picks fp32)"
    return resolved


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
        return f"{requested} thread{'s' if requested > 1 else ''}"
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
