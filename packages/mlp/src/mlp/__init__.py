"""mlp: a multi-layer perceptron on the 8x8 digits, first on micrograd, then on torch.nn.

Files, in reading order: `data.py` (the digits, the split, the batches), `model_micrograd.py`
(the network on stage 1's engine), `model_torch.py` (the same on torch.nn, weight copying),
`train.py` (the two training loops), `report.py` (the confusion matrix), `cli.py` (commands).
torch is imported only by model_torch.py and the torch loop, so the micrograd path runs without it.
"""

from mlp.data import DigitsSplit, batches, load_digits_split
from mlp.model_micrograd import MLPConfig, build_mlp
from mlp.train import TrainConfig, TrainResult, train_micrograd, train_torch

__all__ = [
    "DigitsSplit",
    "MLPConfig",
    "TrainConfig",
    "TrainResult",
    "batches",
    "build_mlp",
    "load_digits_split",
    "train_micrograd",
    "train_torch",
]
