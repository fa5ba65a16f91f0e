"""Muon: momentum, then the nearest orthogonal matrix, for the weight matrices of a network.

Adam scales each weight's update on its own, so a matrix's update is dominated by the few
directions its gradient happens to point along. Muon (Keller Jordan, 2024) keeps a momentum
average M of each matrix's gradient and steps along the semi-orthogonal matrix nearest to it,
U V^T where M = U S V^T: every direction of the update then moves at the same rate.

The SVD would be slow; five steps of a Newton-Schulz iteration get close enough with matmuls
alone. Scale X = M / ||M|| so every singular value lies in (0, 1], then repeat

    X <- a X + (b X X^T + c (X X^T)^2) X        # (m, n), with m <= n: the Gram matrix is (m, m)

Each step maps every singular value s to a s + b s^3 + c s^5, which with (a, b, c) = (3.4445,
-4.7750, 2.0315) pushes all of them towards 1 fast (they end between about 0.7 and 1.2, which
trains as well as exactly 1).

Two choices differ from torch.optim.Muon, which this class otherwise reproduces (tested):

- The iteration runs in `ns_dtype`. torch's always casts to bfloat16, which is fast on GPUs and
  on CPUs with AMX or AVX-512 bf16, and about 80x slower than float32 on AVX2-only CPUs, where
  bf16 is emulated. `shared.device.fast_dtype` picks it once per process.
- Matrices of one shape are orthogonalised together, as one batch of matmuls (`torch.baddbmm`),
  instead of one at a time: a GPT's blocks hold a handful of shapes many times over, and one
  batched call keeps a GPU busy where a Python loop of small ones leaves it idle.

The checkpointed state is torch's (a "momentum_buffer" per matrix and the same group options),
so a run saved with either optimizer resumes with the other.
"""

from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import Tensor

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(
    g: Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """Approximately the nearest semi-orthogonal matrix to each of `g`'s (..., m, n) matrices."""
    a, b, c = coefficients
    x = g.to(dtype=dtype, copy=True)
    tall = g.size(-2) > g.size(-1)
    if tall:  # work on the wide side: the Gram matrix X X^T is then the smaller one
        x = x.mT
    x = x.reshape(-1, *x.shape[-2:])  # (N, m, n), m <= n
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # Frobenius >= spectral norm
    for _ in range(steps):
        gram = x @ x.mT  # (N, m, m)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2
        x = torch.baddbmm(x, poly, x, beta=a)  # a X + poly X
    x = x.reshape(*g.shape[:-2], *x.shape[-2:])
    return x.mT if tall else x


def adjusted_lr(lr: float, shape: torch.Size, adjust_lr_fn: str | None) -> float:
    """torch's per-shape scaling: "original" (Keller Jordan's) grows the rate for tall matrices."""
    rows, cols = shape[0], shape[1]
    if adjust_lr_fn in (None, "original"):
        return lr * max(1.0, rows / cols) ** 0.5
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * max(rows, cols) ** 0.5
    if adjust_lr_fn == "spectral_unclamped":
        return lr * (rows / cols) ** 0.5
    return lr


class Muon(torch.optim.Optimizer):
    """torch.optim.Muon's update, batched by shape, with the Newton-Schulz dtype a parameter."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        ns_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("Muon needs lr, momentum and weight_decay >= 0")
        if adjust_lr_fn not in (None, "original", "match_rms_adamw", "spectral_unclamped"):
            raise ValueError(f"unknown adjust_lr_fn {adjust_lr_fn!r}")
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_coefficients": ns_coefficients,
            "eps": eps,
            "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes matrices only, got a {p.ndim}-d parameter")
        self.ns_dtype = ns_dtype  # not a group option: it follows the machine, not the run

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            momentum = group["momentum"]
            buffers = []
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad)
                buffers.append(self.state[p]["momentum_buffer"])
            # One call per list, not one per matrix (torch._foreach_*: the same arithmetic).
            torch._foreach_lerp_(buffers, grads, 1 - momentum)  # M <- momentum M + (1-momentum) G
            if group["nesterov"]:
                updates = list(torch._foreach_lerp(grads, buffers, momentum))  # G + m (M - G)
            else:
                updates = list(buffers)

            # Orthogonalise the matrices of each shape as one batch (tall ones turned wide, so
            # a (512, 128) matrix joins the (128, 512) ones).
            same_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
            for i, p in enumerate(params):
                same_shape[(min(p.shape), max(p.shape))].append(i)
            for indices in same_shape.values():
                wide = [updates[i].mT if updates[i].size(0) > updates[i].size(1) else updates[i]
                        for i in indices]  # fmt: skip
                ortho = orthogonalize(
                    torch.stack(wide),  # (N, m, n)
                    group["ns_steps"],
                    group["ns_coefficients"],
                    group["eps"],
                    self.ns_dtype,
                )
                for i, o in zip(indices, ortho, strict=True):
                    o = o.mT if updates[i].size(0) > updates[i].size(1) else o
                    # Contiguous and in the weight's dtype (exact from bf16), so that on a GPU
                    # the _foreach_add_ below is one kernel per list, not one per matrix.
                    updates[i] = o.to(params[i].dtype).contiguous()

            # Decay every matrix, then step each shape with its own rate, a list at a time.
            torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            by_shape: dict[torch.Size, list[int]] = defaultdict(list)
            for i, p in enumerate(params):
                by_shape[p.shape].append(i)
            for shape, indices in by_shape.items():
                lr = adjusted_lr(group["lr"], shape, group["adjust_lr_fn"])
                torch._foreach_add_(
                    [params[i] for i in indices], [updates[i] for i in indices], alpha=-lr
                )
        return loss
