"""Which device to run on, and in which precision.

`pick_device("auto")` prefers a CUDA GPU, then Apple's MPS, then the CPU. `autocast(device,
"bf16")` runs matrix multiplications in bfloat16 where the device supports it: on recent CPUs
that alone makes them about 3x faster than float32, with the weights and their updates kept in
float32. float16 needs a gradient scaler (on CUDA) because its range is narrow; bfloat16 has
float32's range and needs none. torch is imported inside these functions only.
"""

import contextlib
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
