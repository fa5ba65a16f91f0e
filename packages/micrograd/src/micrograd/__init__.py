"""micrograd: reverse-mode automatic differentiation on numpy arrays, with nn and optim.

    from micrograd import Tensor, nn, optim
    w = Tensor([[0.5, -1.0]], requires_grad=True)
    loss = ((Tensor([[1.0, 2.0]]) @ w.T - 3.0) ** 2).sum()
    loss.backward()          # w.grad is d loss / d w, shaped like w

Files: `tensor.py` (the ops and their gradients), `engine.py` (graph walk, no_grad), `nn.py`
(modules, losses), `init.py` (initialisers), `optim.py` (SGD, Adam, AdamW), `viz.py` (graphs).
"""

from micrograd import init, nn, optim
from micrograd.engine import is_grad_enabled, no_grad
from micrograd.tensor import Tensor, concatenate, stack
from micrograd.viz import render_png, to_dot

__all__ = [
    "Tensor",
    "concatenate",
    "init",
    "is_grad_enabled",
    "nn",
    "no_grad",
    "optim",
    "render_png",
    "stack",
    "to_dot",
]
