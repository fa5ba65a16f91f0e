"""A character-level language model: embedding -> LSTM -> linear, and its task.

The model reads characters and predicts the next one at every position. It is trained with
truncated backpropagation through time (TBPTT): the text is cut into `batch_size` contiguous
streams, read `seq_len` characters at a time, and the LSTM's state at the end of one window is
carried into the next (detached, so gradients stop at the window's edge) — the model sees
context longer than what it backpropagates through.

The task (vocabulary, data, batches, loss, evaluation, generation) lives here; the plain
training loop is in cli.py. What this leaves out: tokenisation beyond single characters
(stage 6), and any attention (stage 4).
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seq_models.layers import LSTM
from shared.config import option
from shared.errors import UsageError

State = tuple[Tensor, Tensor]  # (h, c), each (num_layers, B, H)


@dataclass
class CharLMConfig:
    embed_dim: int = option(64, "size of each character's embedding vector")
    hidden_size: int = option(256, "LSTM hidden size H (also the width of c)")
    num_layers: int = option(2, "stacked LSTM layers")
    dropout: float = option(0.0, "dropout between LSTM layers (short runs do best without)")

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"--model.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--model.dropout must be in [0, 1), got {self.dropout}")


class CharVocab:
    """The sorted set of characters of a text; ids are positions in that list."""

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self.index = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise UsageError(
                f"characters {''.join(unknown)!r} are not in the model's vocabulary of "
                f"{len(self)} characters; use only characters from the training text"
            )
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)  # (N,)

    def decode(self, ids: Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class CharLM(nn.Module):
    """logits, state = model(idx (B, T), state): embedding -> LSTM -> linear, all tensor ops."""

    def __init__(self, vocab_size: int, cfg: CharLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Parameter(torch.randn(vocab_size, cfg.embed_dim))  # (V, E)
        self.lstm = LSTM(cfg.embed_dim, cfg.hidden_size, cfg.num_layers, dropout=cfg.dropout)
        bound = cfg.hidden_size**-0.5
        self.head_weight = nn.Parameter(torch.empty(vocab_size, cfg.hidden_size))  # (V, H)
        self.head_bias = nn.Parameter(torch.empty(vocab_size))  # (V,)
        nn.init.uniform_(self.head_weight, -bound, bound)
        nn.init.uniform_(self.head_bias, -bound, bound)

    def forward(self, idx: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = self.embedding[idx.T]  # (T, B, E): time-major, the LSTM's own layout
        out, state = self.lstm(x, state)  # (T, B, H)
        logits = out @ self.head_weight.T + self.head_bias  # (T, B, V)
        return logits.transpose(0, 1), state  # (B, T, V)


def detach_state(state: State) -> State:
    """Cut the graph at a window's edge: the values carry on, the gradients stop."""
    return state[0].detach(), state[1].detach()


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats per character: logits (B, T, V), targets (B, T)."""
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
    )


def streams(ids: Tensor, batch_size: int, offset: int = 0) -> tuple[Tensor, Tensor]:
    """The text from `offset` cut into `batch_size` contiguous streams: x (B, n) and y, the
    same streams one character later (B, n). The last few characters that do not fill a
    stream are left for another epoch, whose offset differs."""
    n = (len(ids) - 1 - offset) // batch_size  # characters per stream
    if n < 1:
        raise UsageError(
            f"{len(ids)} characters are too few for {batch_size} streams; lower --batch-size"
        )
    x = ids[offset : offset + n * batch_size].view(batch_size, n)  # (B, n)
    y = ids[offset + 1 : offset + 1 + n * batch_size].view(batch_size, n)  # (B, n)
    return x, y


def tbptt_batches(
    ids: Tensor, batch_size: int, seq_len: int, offset: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """(x, y) windows (B, T) over `batch_size` contiguous streams, in reading order.

    Row b of consecutive windows continues the same stretch of text, so the state a window
    ends in is the right state to start the next one with. y is x shifted by one character.
    """
    x, y = streams(ids, batch_size, offset)  # (B, n) each
    for start in range(0, x.shape[1], seq_len):
        yield x[:, start : start + seq_len], y[:, start : start + seq_len]  # (B, T) each


class TextPosition:
    """Where a TBPTT run stands in its text: the epoch, its window offset, the next window, the
    state the streams carry into it, and the generator that draws each new epoch's offset.

    `seq_models train` gives it to `shared.fit.FitState` as its `sampler`, so the one checkpoint
    layout (`shared.trainer.checkpoint_meta`) saves it and `restore` puts it back: a resumed
    run reads the next window with the right state and draws the same offsets."""

    def __init__(self, seed: int, seq_len: int, device: torch.device | str = "cpu") -> None:
        self.epoch, self.offset, self.window = 0, 0, 0
        self.carry: State | None = None  # (h, c): (layers, B, H) each
        self.seq_len, self.device = seq_len, device
        self.rng = np.random.default_rng(seed)  # draws each epoch's window offset

    def next_epoch(self) -> None:
        """The next epoch reads windows with new edges, from the first one, with no state."""
        self.epoch, self.window, self.carry = self.epoch + 1, 0, None
        self.offset = int(self.rng.integers(self.seq_len))

    def state_dict(self) -> dict[str, Any]:
        carry = None if self.carry is None else [t.tolist() for t in self.carry]
        dtype = None if self.carry is None else str(self.carry[0].dtype).removeprefix("torch.")
        return {"epoch": self.epoch, "offset": self.offset, "window": self.window,
                "carry": carry, "carry_dtype": dtype,
                "offset_rng": self.rng.bit_generator.state}  # fmt: skip

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.epoch, self.offset, self.window = saved["epoch"], saved["offset"], saved["window"]
        self.rng.bit_generator.state = saved["offset_rng"]
        self.carry = None
        if saved["carry"] is not None:  # (layers, B, H) each, in the dtype it was saved in
            dtype = getattr(torch, saved["carry_dtype"])
            h, c = (torch.tensor(t, dtype=dtype, device=self.device) for t in saved["carry"])
            self.carry = (h, c)


@torch.no_grad()
def evaluate(
    model: CharLM,
    ids: Tensor,
    batch_size: int,
    seq_len: int,
    max_batches: int | None = None,
    precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> float:
    """Mean loss (nats per character) over `ids`, reading it as TBPTT streams with carried state."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for k, (x, y) in enumerate(tbptt_batches(ids, batch_size, seq_len)):
        if max_batches is not None and k >= max_batches:
            break
        with precision():  # e.g. lambda: shared.device.autocast(device, "bf16")
            logits, state = model(x, state)
        total += float(lm_loss(logits, y)) * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def generate(
    model: CharLM,
    prompt_ids: Tensor,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue prompt_ids (P,) by `length` sampled characters; returns the new ids (length,).

    temperature < 1 sharpens the distribution (safer, more repetitive), > 1 flattens it;
    0 always takes the most likely character.
    """
    was_training = model.training
    model.eval()
    logits, state = model(prompt_ids.unsqueeze(0))  # (1, P, V)
    last = logits[0, -1]  # (V,)
    out = []
    for _ in range(length):
        if temperature == 0:
            nxt = last.argmax().view(1)  # (1,)
        else:
            probs = torch.softmax(last.float() / temperature, dim=-1)  # (V,)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (1,)
        out.append(int(nxt))
        logits, state = model(nxt.view(1, 1), state)  # (1, 1, V)
        last = logits[0, -1]
    model.train(was_training)
    return torch.tensor(out, dtype=torch.long)
