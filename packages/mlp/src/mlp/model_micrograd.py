"""The multi-layer perceptron, built from the micrograd engine of stage 1.

    x (B, 64) -> Linear -> (B, H1) -> act -> Linear -> (B, H2) -> act -> Linear -> logits (B, 10)

An MLP is a stack of affine maps with a nonlinearity between them. Without the nonlinearity
the stack would collapse into one affine map (W2 (W1 x) = (W2 W1) x), which can only draw
straight decision boundaries; with it, each hidden layer can bend the space a little more.

The loss is softmax cross-entropy on the logits: p = softmax(z), loss = -log p[y], averaged
over the batch. Its gradient with respect to the logits is the famously simple (p - onehot(y)) / B,
which is what micrograd's log_softmax backward computes for us.

Parameter names follow torch's nn.Sequential ("0.weight", "0.bias", "2.weight", ...), because
micrograd's Sequential names its layers by position, so a state dict moves between the two
backends unchanged (see model_torch.py). Left out: dropout, batch norm, other initialisations.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from micrograd import Tensor, nn, no_grad
from mlp.data import N_CLASSES, N_FEATURES

Activation = Literal["relu", "sigmoid"]


@dataclass
class MLPConfig:
    """The network's shape; shared by both backends so they build the same thing."""

    n_in: int = N_FEATURES  # 64 pixels per image
    hidden: tuple[int, ...] = (128,)  # widths of the hidden layers; () is logistic regression
    n_out: int = N_CLASSES  # one logit per digit
    activation: Activation = "relu"  # relu keeps gradients alive; sigmoid shows why that matters

    def __post_init__(self) -> None:
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"--hidden sizes must be positive, got {self.hidden}")
        if self.activation not in ("relu", "sigmoid"):
            raise ValueError(f"--activation must be relu or sigmoid, got {self.activation!r}")

    def layer_sizes(self) -> list[int]:
        """[64, H1, ..., 10]: the width of every layer boundary."""
        return [self.n_in, *self.hidden, self.n_out]


def build_mlp(cfg: MLPConfig, rng: np.random.Generator, dtype: str = "float64") -> nn.Sequential:
    """Linear, activation, Linear, activation, ..., Linear: no activation on the logits.

    Weights are drawn from `rng` the way torch initialises nn.Linear (uniform in
    +-1/sqrt(fan_in)), so the torch backend starts from these very arrays.
    """
    sizes = cfg.layer_sizes()
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out, rng=rng, dtype=np.dtype(dtype)))
        if i < len(sizes) - 2:  # every layer but the last is followed by the nonlinearity
            layers.append(nn.ReLU() if cfg.activation == "relu" else nn.Sigmoid())
    return nn.Sequential(*layers)


def forward(model: nn.Sequential, x: np.ndarray) -> Tensor:
    """Logits for a batch of flattened images: x (B, 64) -> (B, 10)."""
    return model(Tensor(x, dtype=model[0].weight.dtype))  # (B, 10)


def evaluate(model: nn.Sequential, x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and predicted classes on (x, y), without building a graph."""
    loss_fn = nn.CrossEntropyLoss()
    with no_grad():
        logits = forward(model, x)  # (N, 10)
        loss = loss_fn(logits, y)
    predictions = logits.data.argmax(axis=1)  # (N,)
    return float(loss.data), float((predictions == y).mean()), predictions
