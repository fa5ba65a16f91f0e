"""Epochs over a dataset held in memory, in an order a checkpoint can resume exactly.

A stage that trains on a fixed list of examples (SST-2's sentences, Multi30k's pairs) reads them
epoch by epoch, each epoch in a new shuffled order. To resume such a run *exactly*, the resumed
process must continue with the batch the interrupted one would have drawn next. Saving the
shuffled order itself would put tens of thousands of indices into a checkpoint; instead the
order of epoch e is a pure function of (seed, e), so the position is two small numbers:

    plan = lambda epoch: length_grouped_batches(lengths, batch_size, seed, epoch)
    sampler = EpochSampler(plan)
    indices = sampler.next()                 # the next batch of indices, epoch after epoch
    meta["sampler"] = sampler.state_dict()   # {"epoch": 3, "position": 41}
    sampler.load_state_dict(meta["sampler"]) # ... and the resumed run draws batch 42 of epoch 3

`length_grouped_batches` is the usual plan for text: shuffled, then sorted by length within
chunks of 50 batches, so a batch holds sentences of similar length (little padding) while the
chunks and the order of the batches stay random. torch is not needed here.
"""

import random
from collections.abc import Callable, Sequence
from typing import Any


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, chunk_batches: int = 50
) -> list[list[int]]:
    """Index lists of similar-length examples: shuffled, sorted within chunks, batches shuffled.

    The same (seed, epoch) gives the same batches, in any process: the order is drawn from a
    `random.Random` seeded by both, never from a global generator.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


class EpochSampler:
    """Batches of indices, epoch after epoch; `plan(epoch)` gives one epoch's batches.

    `plan` must depend on the epoch (and fixed settings) only, and give the same number of
    batches every epoch, so that `batches_per_epoch` can size a schedule in advance.
    Epochs count from 1; `position` is the number of batches of the current epoch drawn.
    """

    def __init__(self, plan: Callable[[int], Sequence[Sequence[int]]]) -> None:
        self.plan = plan
        self.epoch, self.position = 1, 0
        self._batches: Sequence[Sequence[int]] | None = None  # the current epoch's, when planned
        self.batches_per_epoch = len(plan(1))
        if self.batches_per_epoch == 0:
            raise ValueError("the plan of epoch 1 has no batches: is the dataset empty?")

    def next(self) -> list[int]:
        """The next batch's indices; after an epoch's last batch the next epoch begins."""
        if self._batches is None:
            self._batches = self.plan(self.epoch)
        batch = list(self._batches[self.position])
        self.position += 1
        if self.position == len(self._batches):
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
        return batch

    @property
    def at_epoch_start(self) -> bool:
        """True when the next batch is an epoch's first: right after `next()` ended an epoch."""
        return self.position == 0

    @property
    def epochs_done(self) -> float:
        """Epochs drawn so far, fractional: 2.5 is half-way through the third."""
        return self.epoch - 1 + self.position / self.batches_per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self._batches = int(state["epoch"]), int(state["position"]), None
