"""Neural-network building blocks on top of Tensor: modules, layers, activations and losses.

A `Module` is a plain Python object whose attributes may be Parameters, other Modules, or lists,
tuples and dicts of them. `parameters()` finds them all by walking those attributes, so a model
is written as ordinary classes with no registration step. Names follow torch (`Linear.weight`
has shape (out_features, in_features)) so weights copy across in parity tests.

Left out: buffers, hooks, dropout and normalisation layers (stage 2 and later add them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from micrograd import init
from micrograd.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a model weight: requires_grad is on, and `Module.parameters()` finds it."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype)


class Module:
    """Base class: parameter discovery, train/eval mode, state dicts, and `module(x)`."""

    training: bool = True  # a class default, so subclasses need not call super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_children(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for each attribute that is a Parameter, a Module, or a container of them.

        Container items are named by position or key: `layers.0`, `heads.q`.
        """
        for name, value in vars(self).items():
            if isinstance(value, Parameter | Module):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Parameter | Module):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Parameter | Module):
                        yield f"{name}.{key}", item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every Parameter with its dotted path, in attribute order, depth first.

        A parameter reachable twice (tied weights) is listed once, under its first path.
        """
        seen: set[int] = set()

        def walk(module: Module, path: str) -> Iterator[tuple[str, Parameter]]:
            for name, child in module.named_children():
                full = f"{path}.{name}" if path else name
                if isinstance(child, Module):
                    yield from walk(child, full)
                elif id(child) not in seen:
                    seen.add(id(child))
                    yield full, child

        yield from walk(self, prefix)

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for _, child in self.named_children():
            if isinstance(child, Module):
                yield from child.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's array, keyed by its dotted path."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters, in each parameter's dtype.

        Shapes must match. With strict=True (the default) the key sets must match too, and the
        error lists what is missing and what is unexpected.
        """
        own = dict(self.named_parameters())
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys())
        if strict and (missing or unexpected):
            raise KeyError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, value in state.items():
            if name not in own:
                continue
            value = np.asarray(value)
            if value.shape != own[name].shape:
                raise ValueError(
                    f"state dict: {name!r} has shape {value.shape}, "
                    f"the model expects {own[name].shape}"
                )
        for name, value in state.items():  # only after every check passed
            if name in own:
                own[name].data = np.array(value, dtype=own[name].dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# -------------------------------------------------------------------- layers


class Linear(Module):
    """y = x W^T + b, for x of shape (..., in_features).

    Initialised like torch: weight and bias uniform in +-1/sqrt(in_features) (kaiming uniform
    with a = sqrt(5)). Pass `rng` for reproducible weights.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float64,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((out_features, in_features)), dtype=dtype)
        init.kaiming_uniform_(self.weight, rng, a=math.sqrt(5))
        self.bias = None
        if bias:
            bound = 1 / math.sqrt(in_features)
            self.bias = init.uniform_(
                Parameter(np.zeros(out_features), dtype=dtype), -bound, bound, rng
            )

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.weight.T  # (..., in) @ (in, out) -> (..., out)
        return y + self.bias if self.bias is not None else y

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Sequential(Module):
    """Apply layers in order; index it like a list (`model[0]`)."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def named_children(self) -> Iterator[tuple[str, Any]]:
        """Layers named "0", "1", ... so state-dict keys match torch's Sequential."""
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class GELU(Module):
    """GELU, tanh approximation (torch's `nn.GELU(approximate="tanh")`)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu()


# -------------------------------------------------------------------- losses


def mse_loss(prediction: Tensor, target: Any) -> Tensor:
    """Mean of squared differences over every element."""
    diff = prediction - target
    return (diff * diff).mean()


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean negative log-likelihood of integer class `targets` under softmax(`logits`).

    logits (N, C) with targets (N,), or (..., C) with targets (...), flattened first. Computed
    as -log_softmax(logits)[i, targets[i]] so a confident wrong answer gives a large, finite
    loss instead of log(0).
    """
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integer class ids, got {targets.dtype}")
    num_classes = logits.shape[-1]
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} need targets of shape "
            f"{logits.shape[:-1]}, got {targets.shape}"
        )
    if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(
            f"cross_entropy: targets must lie in [0, {num_classes}), got "
            f"values in [{targets.min()}, {targets.max()}]"
        )
    if logits.ndim != 2:
        logits = logits.reshape(-1, num_classes)  # (N, C)
        targets = targets.reshape(-1)  # (N,)
    logp = logits.log_softmax(axis=-1)  # (N, C)
    picked = logp[np.arange(len(targets)), targets]  # (N,) log-prob of the right class
    return -picked.mean()


def binary_cross_entropy(probs: Tensor, targets: Any) -> Tensor:
    """Mean of -(t log p + (1 - t) log(1 - p)) for probabilities p in (0, 1).

    Each log is clamped at -100, as torch does, so p = 0 or 1 gives a finite loss.
    """
    with np.errstate(divide="ignore"):  # log(0) = -inf is expected here, then clamped
        log_p = probs.log().clip(-100.0, None)
        log_not_p = (1 - probs).log().clip(-100.0, None)
    return -(targets * log_p + (1 - targets) * log_not_p).mean()


def binary_cross_entropy_with_logits(logits: Tensor, targets: Any) -> Tensor:
    """BCE on sigmoid(logits), never forming the probabilities.

    -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x), so the loss is
    t softplus(-x) + (1 - t) softplus(x), finite for any logit.
    """
    return (targets * (-logits).softplus() + (1 - targets) * logits.softplus()).mean()


class MSELoss(Module):
    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return mse_loss(prediction, target)


class CrossEntropyLoss(Module):
    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return cross_entropy(logits, targets)


class BCELoss(Module):
    def forward(self, probs: Tensor, targets: Any) -> Tensor:
        return binary_cross_entropy(probs, targets)


class BCEWithLogitsLoss(Module):
    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return binary_cross_entropy_with_logits(logits, targets)
