"""The graph walk: grad mode, topological order, and the backward pass.

Every differentiable op in `tensor.py` records, on the tensor it returns, its inputs (`_parents`)
and a closure (`_backward`) that turns the gradient of the output into gradients of the inputs: a
vector-Jacobian product. This file adds the other half of reverse-mode autodiff: visit the graph
from the output back to the leaves, each node after every node that uses it, and hand each
closure the sum of the gradients that flowed into its output.

Two choices worth knowing:

- The topological sort is an explicit-stack depth-first search, not recursion, so a graph
  100,000 ops deep (an unrolled loop, a long RNN) does not hit Python's recursion limit.
- Only leaves (tensors you created with `requires_grad=True`, such as parameters) keep a `.grad`;
  gradients of intermediate results live in a dict for the duration of one backward pass and are
  then dropped, as in torch. Leaf gradients accumulate across calls until you zero them.

Left out: higher-order gradients (the closures use numpy, so the backward pass builds no graph),
hooks, and freeing the graph after backward (it stays alive while the output does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from micrograd.tensor import Tensor


class _GradMode:
    """Whether ops record the graph. A class attribute, so reading it costs one lookup per op."""

    enabled: bool = True


@contextmanager
def no_grad() -> Iterator[None]:
    """Run the block without building a graph: results have requires_grad=False.

    Use it for evaluation and for optimizer updates, where recording ops only costs time and
    memory. Nesting is fine; the previous mode is restored on exit, even after an exception.
    """
    previous = _GradMode.enabled
    _GradMode.enabled = False
    try:
        yield
    finally:
        _GradMode.enabled = previous


def is_grad_enabled() -> bool:
    """True outside `no_grad()` blocks."""
    return _GradMode.enabled


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor `root` depends on, each listed after all of its inputs; root comes last.

    An iterative depth-first search: a node is pushed once to expand it and once more to emit it
    after its inputs. In a DAG an input can never be "expanded but not yet emitted" when we reach
    it again (that would need a cycle), so the emitted order is a valid topological order.
    """
    order: list[Tensor] = []
    visited: set[Tensor] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for parent in node._parents:
            if parent not in visited:
                stack.append((parent, False))
    return order


def run_backward(root: Tensor, seed: np.ndarray) -> None:
    """Propagate `seed` (d loss / d root, shaped like root) back to every leaf that needs it.

    Walking the topological order backwards guarantees that when a node is reached, every op
    that consumed it has already contributed its share, so `grads[node]` is complete.
    """
    grads: dict[Tensor, np.ndarray] = {root: seed}
    for node in reversed(topological_order(root)):
        g = grads.pop(node, None)
        if g is None or not node.requires_grad:
            continue
        if node._backward is None:  # a leaf: keep the gradient, in the leaf's own dtype
            g = np.array(g, dtype=node.data.dtype)  # a private, writeable copy
            node.grad = g if node.grad is None else node.grad + g
            continue
        for parent, parent_grad in zip(node._parents, node._backward(g), strict=True):
            if parent_grad is None or not parent.requires_grad:
                continue
            previous = grads.get(parent)
            # never `+=`: parent_grad may be a view shared with another branch
            grads[parent] = parent_grad if previous is None else previous + parent_grad
