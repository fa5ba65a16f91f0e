"""bert's epochs: `shared.epochs`' length-grouped batches, under bert's own seeds.

SST-2's training rows are mostly short phrases (median about 10 WordPiece tokens, a few over 60),
so rows are read in batches of similar length (`shared.epochs.length_grouped_batches`: about 10%
padding instead of about 60%), epoch after epoch through `shared.epochs.EpochSampler`, whose
position (epoch, batch) a checkpoint saves for an exact resume.

The one thing bert keeps: the number each epoch's shuffle is seeded with, seed * 1_000_003 plus
the epoch counted from 0, which bert's runs have always used (shared's is seed * 100_003 plus
the epoch counted from 1). Keeping it keeps every bert run's batches, and so its losses, as they
were.
"""

from collections.abc import Sequence

from shared.epochs import EpochSampler, length_grouped_batches


def bert_epoch(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Epoch `epoch`'s batches (counted from 1, as `EpochSampler` counts), in bert's order."""
    # length_grouped_batches seeds its shuffle with seed * 100_003 + epoch: seed 0 hands it
    # bert's number whole.
    return length_grouped_batches(lengths, batch_size, 0, seed * 1_000_003 + epoch - 1)


def epoch_sampler(lengths: Sequence[int], batch_size: int, seed: int) -> EpochSampler:
    """Length-grouped batches of row indices, epoch after epoch, resumable from two numbers."""
    return EpochSampler(lambda epoch: bert_epoch(lengths, batch_size, seed, epoch))
