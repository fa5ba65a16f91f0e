"""What every training command shares: its run options, their setup, the learning-rate
schedule, and stopping cleanly on Ctrl-C.

A stage's training config inherits `RunOptions`, so the same option has the same name, unit
and meaning in every stage (`--time_limit` is seconds everywhere, `--max_steps` the step cap):

    @dataclass
    class TrainConfig(RunOptions):
        lr: float = option(3e-3, "peak learning rate")
        time_limit: float = option(75.0, "...")   # a stage may change a default, not a meaning

    env = setup(cfg)                 # threads, device, precision (and why), seeds
    with StopSignals() as stop:      # Ctrl-C or SIGTERM: finish the step, then stop
        while not stop.requested and ...:
            lr = peak * lr_factor(step, elapsed, ...)
            ...
    if stop.requested:
        save a checkpoint, print how to resume, exit with stop.exit_code (130 or 143)

Why catch the signal instead of letting KeyboardInterrupt fly: the exception can land anywhere,
half-way through `optimizer.step()` say, and the weights in memory are then neither the old
step's nor the new one's. A flag checked between steps always stops at a step boundary, where
a checkpoint resumes exactly.
"""

import contextlib
import math
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from shared.config import option
from shared.device import describe_precision, pick_device, pick_threads, resolve_precision
from shared.seeding import seed_everything


@dataclass
class RunOptions:
    """The options every training command takes, with one meaning everywhere."""

    max_steps: int = option(
        0, "stop after this many optimizer steps (0: only the time limit)", ge=0
    )
    time_limit: float = option(
        0.0, "seconds of training, final evaluation included (0: none)", ge=0
    )
    eval_interval: int = option(100, "evaluate every N steps", ge=1)
    checkpoint_interval: int = option(
        0, "save a checkpoint every N steps (0: at every evaluation)", ge=0
    )
    keep_checkpoints: int = option(2, "how many periodic checkpoints to keep (the latest)", ge=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto", "auto: bf16 autocast where the CPU or GPU has it natively, else fp32"
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "torch CPU threads (0: as many as there are idle cores)", ge=0)
    seed: int = option(1337, "seeds the weights, the batches and dropout")
    run_name: str | None = option(None, "name of the run folder (default: the start time)")
    resume: str | None = option(None, "continue a run (its name, folder or a checkpoint folder)")

    def __post_init__(self) -> None:
        if self.time_limit <= 0 and self.max_steps <= 0:
            raise ValueError("set --time_limit or --max_steps (or both): training needs an end")

    @property
    def save_every(self) -> int:
        """Steps between periodic checkpoints: the checkpoint interval, else the evaluation's."""
        return self.checkpoint_interval or self.eval_interval


@dataclass
class Setup:
    """What `setup` decided, with the words for the run's first line."""

    device: Any  # torch.device
    precision: str  # "fp32", "bf16" or "fp16"
    precision_note: str  # the precision and why, e.g. "fp32 (auto: bf16 is emulated ...)"
    threads_note: str  # e.g. "2 threads" or "1 of 2 threads (busy cores 1.0; ...)"


def setup(opts: RunOptions) -> Setup:
    """Threads, device, precision and seeds, in that order (the precision verdict times a
    matmul, which should run on the threads training will use)."""
    threads_note = pick_threads(opts.threads)
    device = pick_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    precision_note = describe_precision(opts.precision, device)
    seed_everything(opts.seed)  # last: nothing above may draw from the seeded generators
    return Setup(device, precision, precision_note, threads_note)


Decay = Literal["cosine", "linear", "constant"]


def lr_factor(
    step: int,
    elapsed: float,
    *,
    warmup_steps: int,
    max_steps: int = 0,
    seconds: float | None = None,
    decay: Decay = "cosine",
    min_ratio: float = 0.0,
) -> float:
    """The learning rate over its peak at `step`, after `elapsed` seconds of training.

    Linear warmup over `warmup_steps`, then decay from 1 to `min_ratio`. Progress is the larger
    of the step budget's and the time budget's: with a time budget the number of steps is not
    known in advance, so the decay follows the clock and reaches its floor as the time runs
    out, on a fast machine or a slow one. With a step budget alone every step's rate depends
    on the step only, which is what lets a resumed run repeat the uninterrupted one exactly.
    `seconds` is the time budget (None: none); one already spent (<= 0) means the floor.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    done = 0.0
    if max_steps:
        done = max(done, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    if seconds is not None:
        done = max(done, elapsed / seconds) if seconds > 0 else 1.0
    done = min(done, 1.0)
    shape = {
        "cosine": 0.5 * (1 + math.cos(math.pi * done)),
        "linear": 1 - done,
        "constant": 1.0,
    }[decay]
    return min_ratio + (1 - min_ratio) * shape


class StopSignals:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request to stop after this step.

    Inside the `with` block the first signal only sets `requested` and prints a line; the loop
    finishes its step and stops, and the caller saves a checkpoint. A second Ctrl-C stops at
    once, without one, as the user then plainly wants. The previous handlers come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # the second Ctrl-C
            return  # already stopping: the first signal decides the exit code
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"\n{name}: stopping after this step to save a checkpoint "
            f"(Ctrl-C again to stop without one)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> "StopSignals":
        for signum in self.SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: nothing to catch
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            if previous is not None:  # None: a handler installed outside Python, left alone
                signal.signal(signum, previous)
        self._previous.clear()


def prune_checkpoints(folder: Path, keep: int, prefix: str = "step_") -> list[Path]:
    """Delete all but the `keep` latest `<prefix>NNNNNN` checkpoints in `folder`; returns
    what was deleted. Named checkpoints ("final", "interrupted", "best") are never touched."""
    import shutil

    numbered = [
        p for p in folder.glob(f"{prefix}*") if p.is_dir() and p.name[len(prefix) :].isdigit()
    ]
    periodic = sorted(
        numbered, key=lambda p: int(p.name[len(prefix) :])
    )  # step 10**6 after 999,999
    doomed = periodic[:-keep] if keep > 0 else periodic
    for path in doomed:
        shutil.rmtree(path)
    return doomed
