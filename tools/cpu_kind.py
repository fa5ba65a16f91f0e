"""Which kind of CPU this is, in the words a README figure should carry.

    uv run python tools/cpu_kind.py

Prints the model name, the core count, whether bf16 is native here (the same verdict that
`--precision=auto` follows, from shared.device), and the float32 and bfloat16 matmul rates.
Quote its first line beside any figure you measure: on an AVX2-only CPU bf16 is emulated and
about 80x slower than float32, so the same command can differ by that much between machines.
"""

import os
import time

import torch

from shared.device import cpu_bf16_verdict, cpu_flags


def model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def instruction_set() -> str:
    flags = cpu_flags() or set()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 bf16"
    if "avx512f" in flags:
        return "AVX-512 without bf16"
    if "avx2" in flags:
        return "AVX2 only"
    return "instruction set not listed"


def gflops(dtype: torch.dtype, n: int, seconds: float = 1.0) -> float:
    """Sustained n x n matmul rate in `dtype` over about `seconds`."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    verdict = cpu_bf16_verdict()
    kind = "native bf16" if verdict.native else "bf16 emulated"
    print(f"{model_name()}, {os.cpu_count()} cores, {instruction_set()} ({kind})")
    print(f"  verdict: {verdict.reason}")
    fp32, bf16 = gflops(torch.float32, 1024), gflops(torch.bfloat16, 512)
    print(f"  torch {torch.__version__} matmul: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
