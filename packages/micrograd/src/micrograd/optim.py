"""Optimisers: turn each parameter's `.grad` into an update of its `.data`.

The update rules follow torch.optim line by line (same order of operations, same defaults), so
a float64 run of ours and of torch stays equal to about 1e-12 after many steps. Updates write
into the parameter arrays in place with numpy; the graph is not involved at all.

- SGD:   v <- mu v + g (v = g at the first step);  p <- p - lr v    (g includes wd * p)
- Adam:  m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;  bias-correct both by 1 - b^t;
         p <- p - lr m_hat / (sqrt(s_hat) + eps)                     (g includes wd * p)
- AdamW: as Adam, but weight decay shrinks p directly, p <- p (1 - lr wd), instead of
         being added to the gradient, so it is not rescaled by the adaptive denominator.

Left out: parameter groups, learning-rate schedulers (change `opt.lr` yourself), AMSGrad.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from micrograd.tensor import Tensor


class Optimizer:
    """Holds the parameters and per-parameter state arrays; subclasses define `step()`."""

    _state_names: tuple[str, ...] = ()  # per-parameter arrays saved in the state dict
    _hyper_names: tuple[str, ...] = ()  # scalars saved in the state dict

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params: list[Tensor] = []
        seen: set[int] = set()
        for p in params:
            if id(p) not in seen:  # a parameter shared by two layers is updated once
                seen.add(id(p))
                self.params.append(p)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.steps = 0  # calls to step()
        self.param_steps = [0] * len(self.params)  # updates each parameter has received
        # state[name][i] is that array for params[i]; None until the first step creates it
        self.state: dict[str, list[np.ndarray | None]] = {
            name: [None] * len(self.params) for name in self._state_names
        }

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, the step count, and copies of every state array (None where unset)."""
        return {
            "hyperparams": {name: getattr(self, name) for name in self._hyper_names},
            "steps": self.steps,
            "param_steps": list(self.param_steps),
            "state": {
                name: [None if a is None else a.copy() for a in arrays]
                for name, arrays in self.state.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() saved, after checking it fits these parameters."""
        unknown = sorted(set(state["hyperparams"]) - set(self._hyper_names))
        if unknown:
            raise KeyError(f"unexpected hyperparameters {unknown}; expected {self._hyper_names}")
        if len(state["param_steps"]) != len(self.params):
            raise ValueError(
                f"optimizer state is for {len(state['param_steps'])} parameters, "
                f"this optimizer has {len(self.params)}"
            )
        for name, arrays in state["state"].items():
            if name not in self.state:
                raise KeyError(f"unexpected optimizer state {name!r}; expected {self._state_names}")
            if len(arrays) != len(self.params):
                raise ValueError(
                    f"optimizer state {name!r} has {len(arrays)} entries for "
                    f"{len(self.params)} parameters"
                )
            for i, (a, p) in enumerate(zip(arrays, self.params, strict=True)):
                if a is not None and np.shape(a) != p.shape:
                    raise ValueError(
                        f"optimizer state {name!r}[{i}] has shape {np.shape(a)}, "
                        f"parameter has {p.shape}"
                    )
        for name, value in state["hyperparams"].items():
            setattr(self, name, tuple(value) if name == "betas" else value)
        self.steps = int(state["steps"])
        self.param_steps = [int(n) for n in state["param_steps"]]
        for name, arrays in state["state"].items():
            self.state[name] = [
                None if a is None else np.array(a, dtype=p.dtype)
                for a, p in zip(arrays, self.params, strict=True)
            ]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 decay."""

    _state_names = ("momentum_buffer",)
    _hyper_names = ("lr", "momentum", "weight_decay", "nesterov")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params)
        self.lr, self.momentum, self.weight_decay, self.nesterov = (
            lr,
            momentum,
            weight_decay,
            nesterov,
        )

    def step(self) -> None:
        self.steps += 1
        buffers = self.state["momentum_buffer"]
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = buffers[i]
                if buf is None:
                    buf = buffers[i] = g.copy()
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            self.param_steps[i] += 1
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015); weight decay is L2, added to the gradient, as in torch's Adam."""

    _state_names = ("exp_avg", "exp_avg_sq")
    _hyper_names = ("lr", "betas", "eps", "weight_decay")
    _decoupled = False  # AdamW sets this: decay the weights directly

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay

    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        lr, eps, wd = self.lr, self.eps, self.weight_decay
        exp_avgs, exp_avg_sqs = self.state["exp_avg"], self.state["exp_avg_sq"]
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if exp_avgs[i] is None:  # lazily, so parameters without gradients cost nothing
                exp_avgs[i], exp_avg_sqs[i] = np.zeros_like(p.data), np.zeros_like(p.data)
            m, v = exp_avgs[i], exp_avg_sqs[i]
            self.param_steps[i] += 1
            t = self.param_steps[i]  # per parameter, as torch counts: bias correction uses it
            if wd and self._decoupled:
                p.data *= 1 - lr * wd
            elif wd:
                g = g + wd * p.data
            m += (1 - beta1) * (g - m)  # torch's lerp: m + (1 - b1)(g - m) = b1 m + (1 - b1) g
            v *= beta2
            v += (1 - beta2) * (g * g)
            step_size = lr / (1 - beta1**t)
            denom = np.sqrt(v) / math.sqrt(1 - beta2**t)  # sqrt of the bias-corrected v
            denom += eps
            p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019); torch's default wd 1e-2."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
