"""The same MLP on torch.nn, fed by a torch Dataset and DataLoader, and weight copying both ways.

    model = build_torch_mlp(MLPConfig(hidden=(128,)))      # nn.Sequential(Linear, ReLU, Linear)
    copy_micrograd_to_torch(micrograd_model, model)        # start from the very same weights
    loader = digits_loader(x_train, y_train, batch_size=32, seed=0)
    loader.batch_sampler.set_epoch(3)            # then: the batches of data.batches(..., epoch=3)
    for x, y in epochs_of(loader, 30): ...       # 30 epochs' batches, one after the other

Everything in model_micrograd.py has a one-line counterpart here: micrograd's `nn.Linear` is
torch's `nn.Linear` (same weight shape, (out, in), same initialisation rule), `x.relu()` is
`nn.ReLU`, `nn.CrossEntropyLoss` is `nn.CrossEntropyLoss`, `no_grad()` is `torch.no_grad()`.
Because the two backends build the same layers in the same order, their state dicts have the
same keys and shapes, and copying one into the other is a loop over names.

What torch adds is the input pipeline: a `Dataset` says how to get example i, and a
`DataLoader` groups examples into batches. Our batch sampler asks data.batches() for the
order, so the torch backend sees exactly the batches the micrograd backend sees.

The network is too small for a GPU or for several threads to pay off: `mlp train` runs it on
the CPU in one thread by default (`--device`, `--threads`). On 2 shared cores, 225 training steps
took 6.7 s with torch's default 2 threads and 0.23 s with 1: a (32, 64) @ (64, 128) matmul
takes microseconds, and splitting it costs more in hand-offs than it saves.
"""

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from micrograd import nn as mg_nn
from mlp.data import batches, n_batches
from mlp.model_micrograd import MLPConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_torch_mlp(cfg: MLPConfig, dtype: str = "float64") -> nn.Sequential:
    """Linear, activation, ..., Linear, in `dtype`; torch draws its own initial weights."""
    sizes = cfg.layer_sizes()
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out, dtype=DTYPES[dtype]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if cfg.activation == "relu" else nn.Sigmoid())
    return nn.Sequential(*layers)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and predicted classes on (x, y), as model_micrograd.evaluate."""
    weight = next(model.parameters())  # its dtype and device are the model's
    model.eval()  # no dropout or batch norm here, but the habit matters in later stages
    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=weight.dtype, device=weight.device))  # (N, 10)
        loss = nn.functional.cross_entropy(logits, torch.as_tensor(y, device=weight.device))
    model.train()
    predictions = logits.argmax(dim=1).cpu().numpy()  # (N,)
    return float(loss), float((predictions == y).mean()), predictions


# ---------------------------------------------------------------------------- weights


def state_dict_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The weights as numpy arrays (copies), keyed "0.weight", "0.bias", ... like micrograd's."""
    return {name: t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()}


def load_numpy_state(model: nn.Module, state: dict[str, np.ndarray]) -> None:
    """Copy numpy arrays into the model's parameters, each cast to the parameter's dtype."""
    own = model.state_dict()
    tensors = {
        name: torch.as_tensor(np.asarray(a), dtype=own[name].dtype) for name, a in state.items()
    }
    model.load_state_dict(tensors)  # checks names and shapes, and names what does not fit


def copy_micrograd_to_torch(source: mg_nn.Module, target: nn.Module) -> None:
    """Give the torch model the micrograd model's weights (same names, same shapes)."""
    load_numpy_state(target, source.state_dict())


def copy_torch_to_micrograd(source: nn.Module, target: mg_nn.Module) -> None:
    """Give the micrograd model the torch model's weights."""
    target.load_state_dict(state_dict_numpy(source))


# ---------------------------------------------------------------------------- data


class DigitsDataset(Dataset):
    """Images and labels held in memory; `dataset[i]` is one (x (64,), y ()) pair."""

    def __init__(self, x: np.ndarray, y: np.ndarray, dtype: str = "float64") -> None:
        self.x = torch.as_tensor(x, dtype=DTYPES[dtype])  # (N, 64)
        self.y = torch.as_tensor(y, dtype=torch.int64)  # (N,)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]  # (64,), ()


class SeededBatchSampler(Sampler[list[int]]):
    """Yields the index lists of data.batches(): the same order as the micrograd backend.

    A DataLoader given `batch_sampler=` asks it for whole batches of indices, fetches each
    example from the Dataset, and stacks them (default collate) into x (B, 64) and y (B,).
    Call `set_epoch(e)` before each epoch, as with torch's DistributedSampler.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        for idx in batches(self.n, self.batch_size, self.seed, self.epoch):
            yield idx.tolist()

    def __len__(self) -> int:
        return n_batches(self.n, self.batch_size)


def digits_loader(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, dtype: str = "float64"
) -> DataLoader:
    """A DataLoader over (x, y) yielding the batches of data.batches(len(y), batch_size, seed)."""
    dataset = DigitsDataset(x, y, dtype)
    return DataLoader(dataset, batch_sampler=SeededBatchSampler(len(dataset), batch_size, seed))


def epochs_of(loader: DataLoader, epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches for epochs 0, 1, ..., epochs - 1, one after the other: x (B, 64),
    y (B,). The same order as data.batches(..., epoch) for each epoch in turn."""
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        yield from loader
