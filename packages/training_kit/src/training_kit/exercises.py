"""training_kit's exercises: what the strategies do to gradients and to memory, checked against
the kit's own code.

    uv run --package training_kit exercise list

1. `average_gradients` (loop.py): DDP's all-reduce written by hand. The check runs it in 2 real
   processes (gloo on 127.0.0.1), each with the same small model and its own shard of the data:
   backward, then the learner's function; the gradients each process ends with must be the
   kit's, which are DDP's (both processes also run the same backward under
   `DistributedDataParallel`, and the output holds its gradients too).
2. `zero_paper_bytes` (memory.py): the bytes of model states each GPU holds under DDP and
   ZeRO 1-3, the arithmetic behind the README's memory table.

The 2 processes are forked from the checking one: they inherit the learner's function (loaded
from the learner's file, which a fresh interpreter could not import by name) and torch, already
imported, so a launch costs a fraction of a second instead of a new interpreter's seconds.
"""

import builtins
import multiprocessing
import queue
import re
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from shared.exercises import Case, Exercise
from shared.learn import exercise_command
from training_kit.launch import describe_exit, free_port
from training_kit.loop import average_gradients
from training_kit.memory import zero_paper_bytes

WORLD_SIZE = 2
TIMEOUT_SECONDS = 20.0  # a learner's process that waits for a partner gives up after this

# ----------------------------------------------------------------------------------------------
# 1. Averaging the gradients by hand, on 2 processes


def _gradients(model: nn.Module) -> dict[str, np.ndarray | None]:
    """{parameter name: a copy of its gradient, or None (a frozen parameter has none)}, as numpy
    arrays: they go back through a pipe by value (a tensor would go as shared memory, which
    the sending process must outlive)."""
    return {
        name: None if p.grad is None else p.grad.detach().numpy().copy()
        for name, p in model.named_parameters()
    }


def _one_process(
    rank: int,
    port: int,
    function: Callable[[nn.Module], None],
    model: nn.Module,
    shards: list[tuple[torch.Tensor, torch.Tensor]],
    results: Any,  # a multiprocessing queue: (rank, "ok", output) or (rank, "error", details)
) -> None:
    """Process `rank`: DDP's gradients on this rank's shard, then the same backward on the plain
    model and `function(model)`; both sets of gradients go to `results`. DDP goes first, so
    that a learner's function that leaves the processes out of step cannot garble its result."""
    try:
        torch.set_num_threads(1)  # the 2 processes share the cores; a forked OpenMP pool may hang
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=WORLD_SIZE,
            timeout=timedelta(seconds=TIMEOUT_SECONDS - 5),
        )
        inputs, targets = shards[rank]  # this process's shard: (B_r, ...) and (B_r,)
        ddp = nn.parallel.DistributedDataParallel(model)  # (a wrapper: `model` gets the grads)
        F.cross_entropy(ddp(inputs), targets).backward()  # DDP all-reduces as it goes
        by_ddp = _gradients(model)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()  # the same, with no exchange
        function(model)
        results.put((rank, "ok", {"by hand": _gradients(model), "DDP": by_ddp}))
    except BaseException as error:  # sent as text: the learner's exception may not pickle
        source = function.__code__.co_filename
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == source]
        where = ""
        if frames:
            f = frames[-1]
            where = f"\n  at {Path(f.filename).name}:{f.lineno}: {(f.line or '').strip()}"
        results.put((rank, "error", (type(error).__name__, str(error), where)))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _raise_from_process(rank: int, name: str, message: str, where: str) -> None:
    """Raise here what process `rank` raised. A built-in exception keeps its type (so the
    skeleton's NotImplementedError still reads "not written yet"); another becomes a
    RuntimeError that names it."""
    if "gloo" in message:  # a partner that left or never came: gloo's message, its path cut
        message = re.sub(r"^\[[^\]]*\]\s*", "", message).split(". ")[0] + (
            ": the other process did not take part; does every process make the same all_reduce "
            "calls, in the same order?"
        )
    text = f"{message} (in process {rank} of {WORLD_SIZE}){where}"
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            error = kind(text)
        except TypeError:  # (a constructor that wants more than a text: UnicodeDecodeError)
            error = None
        if error is not None:
            raise error
    raise RuntimeError(f"{name}: {text}")


def _check_alive(processes: list, finished: dict, deadline: float) -> None:
    """Raise if a process died before sending its result, or the time is up."""
    for rank, process in enumerate(processes):
        if process.exitcode not in (None, 0) and rank not in finished:
            died = describe_exit(process.exitcode)
            raise RuntimeError(f"process {rank} of {WORLD_SIZE} died ({died})")
    if time.monotonic() > deadline:
        raise TimeoutError(
            f"the {WORLD_SIZE} processes did not finish in {TIMEOUT_SECONDS:.0f} s: does every "
            "process make the same all_reduce calls, in the same order?"
        )


def on_two_processes(function: Callable[[nn.Module], None], args: tuple) -> dict[str, Any]:
    """Run `function` in 2 processes forked from this one, each after the backward of the case's
    model on its own shard; returns {"rank 0": gradients, "rank 1": gradients, "DDP": rank 0's
    gradients under DDP}, each {parameter name: gradient}."""
    import torch._dynamo  # noqa: F401  DDP's constructor imports it (3 s): once, here, not per fork

    model, shards = args
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    processes = [
        context.Process(target=_one_process, args=(rank, port, function, model, shards, results))
        for rank in range(WORLD_SIZE)
    ]
    for process in processes:
        process.start()
    outputs: dict[int, dict] = {}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while len(outputs) < WORLD_SIZE:
            try:
                rank, status, payload = results.get(timeout=0.1)
            except queue.Empty:
                _check_alive(processes, outputs, deadline)
                continue
            if status == "error":
                _raise_from_process(rank, *payload)
            outputs[rank] = payload
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
    return {
        **{f"rank {rank}": outputs[rank]["by hand"] for rank in range(WORLD_SIZE)},
        "DDP": outputs[0]["DDP"],
    }


def _mlp(seed: int, d_in: int = 4, hidden: int = 8, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def _rows(seed: int, n: int, d_in: int = 4, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d_in, generator=g), torch.randint(0, classes, (n,), generator=g)


def _averaging_cases() -> list[Case]:
    torch.manual_seed(0)
    tagger = nn.Sequential(nn.Embedding(10, 6), nn.Flatten(), nn.Linear(5 * 6, 3))
    tagger[0].weight.requires_grad_(False)  # a frozen embedding: no gradient on any process
    g = torch.Generator().manual_seed(3)
    tokens = [
        (torch.randint(0, 10, (n, 5), generator=g), torch.randint(0, 3, (n,), generator=g))
        for n in (3, 3)
    ]
    return [
        Case("an MLP 4 -> 8 -> 3, each process 4 rows of x (4, 4)",
             (_mlp(0), [_rows(1, 4), _rows(2, 4)]), seed=0),
        Case("shards of unequal size: 1 row and 5 rows (each process's mean loss)",
             (_mlp(1), [_rows(3, 1), _rows(4, 5)]), seed=1),
        Case("tokens (3, 5) -> a frozen Embedding(10, 6) -> Linear(30, 3)",
             (tagger, tokens), seed=2),
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# 2. Bytes of model states per GPU under DDP and ZeRO 1-3


def _memory_cases() -> list[Case]:
    cases = []
    for params, gpus in [(1_000_000, 8), (124_439_808, 8), (354_823_168, 16), (1_234_567, 1),
                         (1_234_567, 3)]:  # fmt: skip
        for stage in range(4):
            label = f"{params:,} parameters on {gpus} GPUs, ZeRO stage {stage}"
            cases.append(Case(label, (params, gpus, stage)))
    return cases


EXERCISES = [
    Exercise(
        slug="average_gradients",
        title="average the gradients over the processes by hand, as DDP does",
        reference=average_gradients,
        cases=_averaging_cases,
        call=on_two_processes,
        imports="import torch\nimport torch.distributed as dist\n",
        docstring="""
Make every parameter's gradient its mean over all processes, in place.

Every process calls this after `loss.backward()` on its own shard of the batch; p.grad then
holds this process's gradient, shaped like p (e.g. (8, 4) for a Linear(4, 8)'s weight).
Afterwards p.grad must be the same on every process: the sum over the processes divided by
their number (dist.get_world_size()), exactly what DDP leaves. The process group is already
joined (gloo). A frozen parameter (requires_grad=False) has p.grad None on every process.""",
        hint="""Sum in place with dist.all_reduce(p.grad, op=dist.ReduceOp.SUM), then divide.
The divisor is the number of processes, dist.get_world_size(). Do it for every parameter whose
.grad is not None, in the same order on every process (model.parameters() is).""",
    ),
    Exercise(
        slug="zero_memory",
        title="bytes of model states per GPU under DDP and ZeRO 1-3",
        reference=zero_paper_bytes,
        cases=_memory_cases,
        docstring="""
Bytes of model states per GPU at ZeRO `stage` (0: DDP) for `params` parameters on `gpus` GPUs.

Adam in mixed precision keeps, per parameter: 2 bytes of 16-bit weights, 2 bytes of 16-bit
gradients, 12 bytes of optimizer state (an fp32 master copy of the weight and Adam's two
moments): 16 bytes on every GPU with nothing split. Each stage splits one more part over the
GPUs: stage 1 the optimizer states, stage 2 the gradients too, stage 3 the weights too.
A float: 1,000,000 parameters on 8 GPUs at stage 1 hold 4e6 + 12e6 / 8 bytes.""",
        hint="""Start from the three parts, 2 P, 2 P and 12 P; divide those the stage splits.
Stage s splits everything stage s - 1 splits, and one part more: `if stage >= 1`, ...""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package training_kit exercise ...` (see shared/learn.py)."""
    return exercise_command("training_kit", EXERCISES, argv)
