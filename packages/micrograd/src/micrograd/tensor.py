"""The Tensor: a numpy array that remembers how it was made, so it can be differentiated.

Each op below does two things: compute its result with numpy (the forward pass), and, when any
input requires a gradient, attach a closure that maps the gradient of the result to gradients of
the inputs (the op's vector-Jacobian product). `engine.py` walks those closures in reverse.

Conventions used by every op:

- Broadcasting follows numpy. An input that was broadcast was, in effect, copied along the new
  or stretched axes, so its gradient is the sum over those axes (`_unbroadcast`).
- Non-tensor operands are constants. numpy arrays are converted to the dtype of the tensor they
  meet; Python numbers are used as they are (numpy keeps the array's dtype for them), so
  `x32 * 0.5` stays float32.
- Closures capture numpy arrays, never the output Tensor, so the graph holds no reference cycles
  and is freed as soon as its output is.
- Gradients are only computed for inputs that require them: `x @ W` with data `x` skips `dL/dx`.

Left out: in-place ops, integer and complex autograd, devices, strides beyond numpy's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from micrograd.engine import _GradMode, run_backward

Axis = int | tuple[int, ...] | None
Backward = Callable[[np.ndarray], Sequence[np.ndarray | None]]

_PY_NUMBERS = (int, float)
_GELU_C = math.sqrt(2.0 / math.pi)  # a Python float: a numpy float64 would upcast float32


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    `Tensor(data)` copies `data`. Floating numpy arrays keep their dtype; everything else (lists,
    Python numbers, integer arrays) becomes float64 unless `dtype` says otherwise, for example
    `Tensor(x, dtype=np.float32)`.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_op", "__weakref__")
    __array_ufunc__ = None  # make `ndarray + Tensor` call Tensor.__radd__ instead of numpy's loop

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is None:
            is_float = isinstance(data, np.ndarray) and np.issubdtype(data.dtype, np.floating)
            dtype = data.dtype if is_float else np.float64
        self.data: np.ndarray = np.array(data, dtype=dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._op = ""

    # ---------------------------------------------------------------- basics

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, threshold=20, prefix="Tensor(")
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}{flag}, dtype={self.data.dtype})"

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def backward(self, gradient: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires a gradient.

        A scalar (single-element) tensor seeds the pass with 1. Any other shape needs an explicit
        `gradient` of the same shape, the vector in the vector-Jacobian product.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph)")
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a scalar, got shape {self.shape}; "
                    f"reduce it first (e.g. .sum()) or pass gradient= of shape {self.shape}"
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.array(
                gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.data.dtype
            )
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward(): gradient shape {seed.shape} != tensor shape {self.shape}"
                )
        run_backward(self, seed)

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> Tensor:
        """The same data (shared, not copied), cut off from the graph."""
        return _make(self.data, (), None, "detach")

    # ---------------------------------------------------------------- elementwise arithmetic

    # A Python number operand takes a shortcut: no constant tensor, nothing to unbroadcast.
    # (Only exact int/float: a numpy float64 scalar would silently upcast float32 data.)

    def __add__(self, other: Any) -> Tensor:
        if type(other) in _PY_NUMBERS:
            return _make(self.data + other, (self,), _pass_through, "add")
        other = _lift(other, self)
        a, b = self.data, other.data
        try:
            data = a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None

        def backward(g):
            return (
                _unbroadcast(g, a.shape) if self.requires_grad else None,
                _unbroadcast(g, b.shape) if other.requires_grad else None,
            )

        return _make(data, (self, other), backward, "add")

    def __sub__(self, other: Any) -> Tensor:
        if type(other) in _PY_NUMBERS:
            return _make(self.data - other, (self,), _pass_through, "sub")
        other = _lift(other, self)
        a, b = self.data, other.data
        try:
            data = a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None

        def backward(g):
            return (
                _unbroadcast(g, a.shape) if self.requires_grad else None,
                _unbroadcast(-g, b.shape) if other.requires_grad else None,
            )

        return _make(data, (self, other), backward, "sub")

    def __mul__(self, other: Any) -> Tensor:
        if type(other) in _PY_NUMBERS:
            return _make(self.data * other, (self,), lambda g: (g * other,), "mul")
        other = _lift(other, self)
        a, b = self.data, other.data
        try:
            data = a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None

        def backward(g):
            return (
                _unbroadcast(g * b, a.shape) if self.requires_grad else None,
                _unbroadcast(g * a, b.shape) if other.requires_grad else None,
            )

        return _make(data, (self, other), backward, "mul")

    def __truediv__(self, other: Any) -> Tensor:
        if type(other) in _PY_NUMBERS:
            return _make(self.data / other, (self,), lambda g: (g / other,), "div")
        other = _lift(other, self)
        a, b = self.data, other.data
        try:
            data = a / b
        except ValueError:
            raise _broadcast_error("div", a, b) from None

        def backward(g):  # d(a/b)/da = 1/b,  d(a/b)/db = -a/b^2 = -(a/b)/b
            ga = g / b
            return (
                _unbroadcast(ga, a.shape) if self.requires_grad else None,
                _unbroadcast(-ga * data, b.shape) if other.requires_grad else None,
            )

        return _make(data, (self, other), backward, "div")

    def __pow__(self, exponent: Any) -> Tensor:
        if type(exponent) in _PY_NUMBERS:  # the common case: a constant power
            a = self.data
            data = a**exponent

            def backward(g):
                return (g * exponent * a ** (exponent - 1),)

            return _make(data, (self,), backward, f"pow{exponent:g}")
        return _power(self, _lift(exponent, self))

    def __rpow__(self, base: Any) -> Tensor:
        return _power(_lift(base, self), self)

    def __neg__(self) -> Tensor:
        return _make(-self.data, (self,), lambda g: (-g,), "neg")

    def __radd__(self, other: Any) -> Tensor:
        return self + other if type(other) in _PY_NUMBERS else _lift(other, self) + self

    def __rsub__(self, other: Any) -> Tensor:
        if type(other) in _PY_NUMBERS:
            return _make(other - self.data, (self,), lambda g: (-g,), "rsub")
        return _lift(other, self) - self

    def __rmul__(self, other: Any) -> Tensor:
        return self * other if type(other) in _PY_NUMBERS else _lift(other, self) * self

    def __rtruediv__(self, other: Any) -> Tensor:
        if type(other) in _PY_NUMBERS:
            a = self.data
            data = other / a
            return _make(data, (self,), lambda g: (-g * data / a,), "rdiv")  # d(c/a) = -c/a^2
        return _lift(other, self) / self

    # ---------------------------------------------------------------- matrix product

    def __matmul__(self, other: Any) -> Tensor:
        """numpy matmul semantics: (..., n, k) @ (..., k, m) -> (..., n, m), batch dims broadcast.

        Gradients: dA = dC @ B^T has A's shape (n, k); dB = A^T @ dC has B's shape (k, m). A 1-D
        operand is treated as a row (left) or column (right) vector with that axis then removed.
        """
        other = _lift(other, self)
        a, b = self.data, other.data
        try:
            data = a @ b
        except ValueError:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                f"(need (..., n, k) @ (..., k, m) with broadcastable batch dims)"
            ) from None

        if a.ndim == 2 and b.ndim == 2:  # the fast path every Linear layer takes

            def backward(g):  # g: (n, m)
                ga = g @ b.T if self.requires_grad else None  # (n, m) @ (m, k) -> (n, k)
                gb = a.T @ g if other.requires_grad else None  # (k, n) @ (n, m) -> (k, m)
                return ga, gb

        else:

            def backward(g):
                a2 = a[None, :] if a.ndim == 1 else a  # (1, k) for a vector on the left
                b2 = b[:, None] if b.ndim == 1 else b  # (k, 1) for a vector on the right
                if b.ndim == 1:
                    g = np.expand_dims(g, -1)  # restore the removed m axis: (..., n, 1)
                if a.ndim == 1:
                    g = np.expand_dims(g, -2)  # restore the removed n axis: (..., 1, m)
                ga = gb = None
                if self.requires_grad:
                    ga = _unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
                if other.requires_grad:
                    gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
                return ga, gb

        return _make(data, (self, other), backward, "matmul")

    def __rmatmul__(self, other: Any) -> Tensor:
        return _lift(other, self) @ self

    # ---------------------------------------------------------------- reductions

    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        shape = self.data.shape

        def backward(g):  # every summed element gets the output's gradient
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return (_expand(g, shape),)

        return _make(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward, "sum")

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        shape = self.data.shape
        data = self.data.mean(axis=axis, keepdims=keepdims)
        count = self.data.size // max(np.size(data), 1)  # elements averaged per output

        def backward(g):
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return (_expand(g / count, shape),)

        return _make(data, (self,), backward, "mean")

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Largest value along `axis`. Ties share the gradient evenly (like torch.amax)."""
        a = self.data
        top = a.max(axis=axis, keepdims=True)  # reduced axes kept, size 1

        def backward(g):
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            winners = a == top  # (a.shape) True where the max was attained
            share = winners / winners.sum(axis=axis, keepdims=True)
            return ((g * share).astype(a.dtype, copy=False),)

        data = top if keepdims else (top.reshape(()) if axis is None else np.squeeze(top, axis))
        return _make(data, (self,), backward, "max")

    # ---------------------------------------------------------------- shape ops

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        new_shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        old_shape = self.data.shape
        try:
            data = self.data.reshape(new_shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape tensor of shape {old_shape} into {tuple(new_shape)}"
            ) from None
        return _make(data, (self,), lambda g: (g.reshape(old_shape),), "reshape")

    def transpose(self, *axes: int) -> Tensor:
        """Permute axes; with none given, reverse them (a matrix's transpose)."""
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        axes = tuple(ax % self.ndim for ax in axes) or tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(axes))  # the permutation that undoes `axes`
        data = self.data.transpose(axes)  # e.g. (B, T, C) with axes (0, 2, 1) -> (B, C, T)
        return _make(data, (self,), lambda g: (g.transpose(inverse),), "transpose")

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        """numpy indexing. With integer arrays (an embedding lookup) a row can be picked twice,
        so the backward pass scatters with np.add.at, which adds repeats instead of overwriting.
        """
        index = _plain_index(index)
        a = self.data
        data = a[index]  # e.g. an embedding table (V, D)[ids (B, T)] -> (B, T, D)
        basic = _is_basic_index(index)

        def backward(g):
            full = np.zeros_like(a)
            if basic:  # slices and ints pick each element at most once
                full[index] = g
            else:
                np.add.at(full, index, g)
            return (full,)

        return _make(data, (self,), backward, "index")

    # ---------------------------------------------------------------- elementwise functions

    def exp(self) -> Tensor:
        data = np.exp(self.data)
        return _make(data, (self,), lambda g: (g * data,), "exp")

    def log(self) -> Tensor:
        a = self.data
        return _make(np.log(a), (self,), lambda g: (g / a,), "log")

    def sqrt(self) -> Tensor:
        data = np.sqrt(self.data)
        return _make(data, (self,), lambda g: (g / (2 * data),), "sqrt")

    def sin(self) -> Tensor:
        a = self.data
        return _make(np.sin(a), (self,), lambda g: (g * np.cos(a),), "sin")

    def cos(self) -> Tensor:
        a = self.data
        return _make(np.cos(a), (self,), lambda g: (-g * np.sin(a),), "cos")

    def abs(self) -> Tensor:
        a = self.data
        return _make(np.abs(a), (self,), lambda g: (g * np.sign(a),), "abs")

    def tanh(self) -> Tensor:
        data = np.tanh(self.data)
        return _make(data, (self,), lambda g: (g * (1 - data * data),), "tanh")

    def sigmoid(self) -> Tensor:
        data = _sigmoid(self.data)
        return _make(data, (self,), lambda g: (g * data * (1 - data),), "sigmoid")

    def relu(self) -> Tensor:
        a = self.data
        data = np.maximum(a, 0)
        return _make(data, (self,), lambda g: (g * (a > 0),), "relu")

    def softplus(self) -> Tensor:
        """log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so it never overflows."""
        a = self.data
        data = np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))
        return _make(data, (self,), lambda g: (g * _sigmoid(a),), "softplus")

    def gelu(self) -> Tensor:
        """GELU in its tanh form, x/2 (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi).

        This is torch's `gelu(approximate="tanh")` (GPT-2's choice), not the exact erf form:
        numpy has no vectorised erf, and the two differ by less than 1e-3.
        """
        a = self.data
        inner = _GELU_C * (a + 0.044715 * a**3)
        t = np.tanh(inner)
        data = 0.5 * a * (1 + t)

        def backward(g):
            d_inner = _GELU_C * (1 + 3 * 0.044715 * a * a)
            return (g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * d_inner),)

        return _make(data, (self,), backward, "gelu")

    def clip(self, low: float | None = None, high: float | None = None) -> Tensor:
        """Clamp into [low, high]; the gradient passes only where the value was not clamped."""
        a = self.data
        data = np.clip(a, low, high)
        return _make(data, (self,), lambda g: (g * (data == a),), "clip")

    # ---------------------------------------------------------------- softmax family

    def softmax(self, axis: int = -1) -> Tensor:
        """e^x / sum(e^x) along `axis`, after subtracting the max so e^x cannot overflow.

        Backward: with s = softmax(x), dx = s * (g - sum(g * s)), the vector-Jacobian product
        without forming the (C, C) Jacobian diag(s) - s s^T.
        """
        z = self.data - self.data.max(axis=axis, keepdims=True)  # <= 0, so exp(z) <= 1
        e = np.exp(z)
        data = e / e.sum(axis=axis, keepdims=True)

        def backward(g):
            gs = g * data
            return (gs - data * gs.sum(axis=axis, keepdims=True),)

        return _make(data, (self,), backward, "softmax")

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - logsumexp(x) along `axis`, stable for any finite input (see softmax).

        Backward: dx = g - softmax(x) * sum(g).
        """
        z = self.data - self.data.max(axis=axis, keepdims=True)
        data = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))

        def backward(g):
            return (g - np.exp(data) * g.sum(axis=axis, keepdims=True),)

        return _make(data, (self,), backward, "log_softmax")


# -------------------------------------------------------------------- joining tensors


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; the gradient is split back at the same offsets."""
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
    try:
        data = np.concatenate([t.data for t in tensors], axis=axis)
    except ValueError:  # np.exceptions.AxisError is a ValueError too
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ValueError(f"concatenate: cannot join shapes {shapes} along axis {axis}") from None
    offsets = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return _make(data, tensors, lambda g: np.split(g, offsets, axis=axis), "concatenate")


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join equal-shaped tensors along a new axis; input i gets slice i of the gradient."""
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
    try:
        data = np.stack([t.data for t in tensors], axis=axis)
    except ValueError:  # np.exceptions.AxisError is a ValueError too
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ValueError(f"stack: cannot stack shapes {shapes} along axis {axis}") from None
    new_axis = axis % data.ndim
    return _make(data, tensors, lambda g: np.moveaxis(g, new_axis, 0), "stack")


# -------------------------------------------------------------------- helpers

_new_tensor = object.__new__


def _make(data: Any, parents: tuple[Tensor, ...], backward: Backward | None, op: str) -> Tensor:
    """Wrap an op's result; record the graph only if grad mode is on and an input needs it.

    Bypasses `Tensor.__init__` (no copy, no dtype logic): this runs once per op, so it is hot.
    """
    out = _new_tensor(Tensor)
    # numpy ufuncs return scalars for 0-d input; keep .data an ndarray
    out.data = data if type(data) is np.ndarray else np.asarray(data)
    out.grad = None
    out._op = op
    if _GradMode.enabled:
        for parent in parents:
            if parent.requires_grad:
                out.requires_grad = True
                out._parents = parents
                out._backward = backward
                return out
    out.requires_grad = False
    out._parents = ()
    out._backward = None
    return out


def _lift(value: Any, like: Tensor) -> Tensor:
    """A Tensor as is; anything else as a constant in `like`'s dtype."""
    if isinstance(value, Tensor):
        return value
    return _make(np.asarray(value, dtype=like.data.dtype), (), None, "const")


def _power(base: Tensor, exponent: Tensor) -> Tensor:
    """base ** exponent with both sides differentiable: d/dexp = base^exp * log(base)."""
    a, b = base.data, exponent.data
    try:
        data = a**b
    except ValueError:
        raise _broadcast_error("pow", a, b) from None

    def backward(g):
        ga = gb = None
        if base.requires_grad:
            ga = _unbroadcast(g * b * a ** (b - 1), a.shape)
        if exponent.requires_grad:
            gb = _unbroadcast(g * data * np.log(a), b.shape)
        return ga, gb

    return _make(data, (base, exponent), backward, "pow")


def _pass_through(g: np.ndarray) -> tuple[np.ndarray]:
    """The backward of x + c and x - c: the gradient flows through unchanged."""
    return (g,)


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `g` down to `shape`, undoing numpy broadcasting.

    Broadcasting copies an operand along new leading axes and along axes of size 1; each copy
    contributed to the output, so the operand's gradient is the sum over those axes.
    """
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))  # new leading axes: sum them away
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)  # size-1 axes that were stretched
    return g


def _expand(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast `g` to `shape` as a fresh, writeable array (cheaper than np.broadcast_to)."""
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


def _sigmoid(a: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow: uses e^-|x| <= 1 for both signs of x."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _broadcast_error(op: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


def _plain_index(index: Any) -> Any:
    """Turn Tensors and lists inside an index into numpy integer arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data.astype(np.intp)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis (no element can be selected twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, int | slice | type(None) | type(Ellipsis)) for i in parts)
