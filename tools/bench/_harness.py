"""The benchmark harness: options, thread caps, interleaved rounds, medians and ratios, once.

Every script in tools/bench/ compares contenders (ours against a trusted library, or our variants
against each other). A script builds its contenders as functions of no arguments, one call each
(a training step, a forward and backward, a whole generation), and hands them here:

    p = _harness.parser(__doc__, rounds=9, threads=1, calls=5)   # + the script's own options
    args = _harness.parse(p)            # caps the threads: before torch or numpy is imported
    import torch                        # ... build the contenders ...
    timings = _harness.interleave({"ours": ours, "torch": ref}, rounds=args.rounds)
    _harness.table(timings, reference="torch")

Timing: every contender is warmed up, then they run in rounds, in order on even rounds and in
reverse on odd ones (A B, B A, A B, ...), so drift in the machine's load hits all of them alike;
each round gives seconds per call (wall and this process's CPU time) and we report the median
round. Ratios are always time over the reference's time: 2.00x means twice as slow.

What is left out: statistics beyond the median (on a shared machine the spread says more about
the neighbours than about the code), and anything a script measures besides time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}
# Read once, when each library loads: torch and numpy's BLAS (OpenMP, MKL, OpenBLAS) and the
# Rust thread pool of `tokenizers` (Rayon).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
)


def parser(
    doc: str, *, rounds: int, threads: int = 1, calls: int | None = None
) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every benchmark has; the script adds its own.

    `doc` is the script's docstring (its first paragraph becomes the description); `calls`, if
    given, adds `--calls` (alias `--steps`): timed calls per round, for calls too short to time
    one by one.
    """
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=rounds, help="timed rounds per contender")
    p.add_argument(
        "--threads", type=int, default=threads, help="threads for every library (0: its default)"
    )
    if calls is not None:
        p.add_argument(
            "--calls", "--steps", type=int, default=calls, help="timed calls (steps) per round"
        )
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the options, then cap the threads of every library at --threads (0: no cap).

    Call it before importing torch, numpy or tokenizers: each reads its thread count once, when
    it loads. A torch already imported is set directly.
    """
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, not {args.rounds}")
    if getattr(args, "calls", 1) < 1:
        p.error(f"--calls must be at least 1, not {args.calls}")
    if args.threads > 0:
        for name in THREAD_VARIABLES:
            os.environ[name] = str(args.threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(args.threads)
    return args


@dataclass
class Timing:
    """Seconds per call, one entry per round: wall clock, and this process's CPU time."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def interleave(
    contenders: dict[str, Callable[[], object]],
    *,
    rounds: int,
    calls: int = 1,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Warm each contender up (`warmup` calls), then time `rounds` interleaved rounds of `calls`.

    `sync` runs before the clock starts and before it stops (a GPU's `torch.cuda.synchronize`,
    so that queued work is counted where it was launched).
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing() for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn = contenders[name]
            if sync:
                sync()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                fn()
            if sync:
                sync()
            timings[name].wall.append((time.perf_counter() - wall) / calls)
            timings[name].cpu.append((time.process_time() - cpu) / calls)
    return timings


def table(
    timings: dict[str, Timing],
    reference: str,
    *,
    unit: str = "ms",
    columns: dict[str, Callable[[str, Timing], str]] | None = None,
    title: str = "contender",
) -> None:
    """One row per contender: the median time per call, any extra `columns` (header -> cell
    from the contender's name and timing), and the time over the reference's (its row: 1.00x)."""
    columns = columns or {}
    width = max(len(title), *(len(name) for name in timings))
    ref = timings[reference].median
    head = f"{title:{width}s} {unit + '/call':>10s}"
    head += "".join(f" {h:>{max(10, len(h))}s}" for h in columns)
    print(f"{head} {'time/ref':>9s}")
    for name, t in timings.items():
        row = f"{name:{width}s} {_seconds(t.median, unit):>10s}"
        row += "".join(f" {cell(name, t):>{max(10, len(h))}s}" for h, cell in columns.items())
        print(f"{row} {t.median / ref:8.2f}x")


def pairs(
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]],
    *,
    rounds: int,
    calls: int = 1,
    warmup: int = 1,
    labels: tuple[str, str] = ("ours", "torch"),
    unit: str = "ms",
    title: str = "case",
) -> dict[str, dict[str, Timing]]:
    """Time each case's (ours, reference) pair in interleaved rounds, one case after another,
    printing one row per case as it finishes: both medians and ours / reference."""
    ours, ref = labels
    heads = [f"{ours} {unit}", f"{ref} {unit}", f"{ours} / {ref}"]
    widths = [max(10, len(h)) for h in heads]
    width = max(len(title), *(len(name) for name in cases))
    print(f"{title:{width}s}" + "".join(f" {h:>{w}s}" for h, w in zip(heads, widths, strict=True)))
    results = {}
    for name, (a, b) in cases.items():
        t = interleave({ours: a, ref: b}, rounds=rounds, calls=calls, warmup=warmup)
        mine, theirs = t[ours].median, t[ref].median
        cells = [_seconds(mine, unit), _seconds(theirs, unit), f"{mine / theirs:.2f}"]
        print(
            f"{name:{width}s}" + "".join(f" {c:>{w}s}" for c, w in zip(cells, widths, strict=True)),
            flush=True,
        )
        results[name] = t
    return results


def _seconds(seconds: float, unit: str) -> str:
    """A time in `unit`: two decimals for ms and us, three for whole seconds."""
    return f"{seconds * UNITS[unit]:.{3 if unit == 's' else 2}f}"


def threads_note(threads: int) -> str:
    """How the threads were set, for a benchmark's header line."""
    return "libraries' default threads" if threads == 0 else f"{threads} thread(s)"
