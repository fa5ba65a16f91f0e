"""training_kit's cost: `single` against the stage's own loop, and each strategy on 2 processes.

Part 1, in this process, interleaved: `--calls` steps of gpt's default model (AdamW, fp32 or the
precision verdict) through `shared.fit.fit` (what `gpt train` runs) against the same steps
through the kit's loop with `--strategy single` (Accelerate's prepare, backward and clipping).
Ratio kit / plain: 1.00x means no overhead; the issue's goal is within 5%.

Part 2: 2 worker processes under torch's elastic launcher, gloo, one thread each, every
strategy in turn on the same task (`training_kit.proof`), median seconds per step after the
first few, as tokens per second. Read it honestly: 2 cores split between 2 processes do not
train faster than 1 process with 2 threads; what the figures show is each engine's overhead
(gradient all-reduce, reduce-scatter, gathering weights) on top of the arithmetic.

    uv run python tools/bench/training_kit_overhead.py --threads 2
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import tempfile
from pathlib import Path

import _harness

TASK = ["--optimizer=adamw", "--time_limit=0", "--eval_iters=1", "--device=cpu", "--seed=0"]


def part_one(args) -> None:
    from shared.fit import FitSettings, FitState, fit
    from shared.runs import Run
    from shared.seeding import seed_everything
    from shared.tasks import load_training_task
    from shared.training import setup
    from training_kit.loop import train
    from training_kit.options import KitOptions
    from training_kit.worker import Silent, make_engine

    argv = [*TASK, f"--threads={args.threads}", f"--max_steps={args.calls}",
            f"--eval_interval={args.calls}"]  # fmt: skip
    plain_task = load_training_task("gpt", argv)
    kit_task = load_training_task("gpt", argv)
    env = setup(plain_task.config)
    folder = Path(tempfile.mkdtemp(prefix="kit-bench-"))

    seed_everything(0)
    plain_model = plain_task.build_model()
    plain_optimizer = plain_task.build_optimizer(plain_model)
    settings = FitSettings(schedule=plain_task.schedule, grad_clip=plain_task.grad_clip)
    state = FitState()
    run = Run(folder)
    opts = plain_task.config

    def plain() -> None:
        opts.max_steps = state.step + args.calls  # `args.calls` more steps, evaluation included
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            fit(plain_task.task, plain_model, plain_optimizer, opts, settings, run, state,
                env.device, env.precision)  # fmt: skip

    seed_everything(0)
    engine = make_engine(KitOptions(), kit_task, kit_task.build_model(), env.precision)

    def kit() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            train(engine, kit_task, 1, env.device, env.precision, lambda *a, **k: None,
                  Silent(), lambda state, name: None)  # fmt: skip

    timings = _harness.interleave({"kit single": kit, "shared.fit": plain}, rounds=args.rounds)
    cfg = plain_task.config
    print(f"gpt default model ({cfg.model.n_layer}x{cfg.model.n_embd}, batch {cfg.batch_size} x "
          f"{cfg.model.block_size}), AdamW, {env.precision}, {args.threads} threads, "
          f"{args.calls} steps a call")  # fmt: skip
    _harness.table(timings, reference="shared.fit")


def part_two(args) -> None:
    from training_kit.launch import free_port, launch_workers

    specs = ["ddp", "fsdp", "deepspeed:0", "deepspeed:1", "deepspeed:2", "deepspeed:3"]
    out = Path(tempfile.mkdtemp(prefix="kit-bench-2p-"))
    steps = args.two_process_steps
    argv = [str(out), *specs, "--", "--task=gpt", *TASK, "--precision=fp32", f"--max_steps={steps}",
            f"--eval_interval={steps}"]  # fmt: skip
    launch_workers(2, free_port(), argv, module="training_kit.proof")
    from shared.tasks import load_training_task
    from training_kit.options import KitOptions
    from training_kit.proof import run_strategy

    # The baseline: one process with both cores, the same precision and steps.
    budget = [f"--max_steps={steps}", f"--eval_interval={steps}", f"--threads={args.threads}"]
    one = load_training_task("gpt", [*TASK, "--precision=fp32", *budget])
    single_seconds: list[float] = []
    run_strategy(KitOptions(), one, single_seconds)
    cfg = one.config
    tokens = cfg.batch_size * cfg.model.block_size
    seconds = statistics.median(single_seconds[2:])
    print(f"\nfp32, batch {cfg.batch_size} x {cfg.model.block_size} per process, median of steps "
          f"4..{steps}:")  # fmt: skip
    print(f"  {'single':12s} {seconds * 1e3:8.1f} ms/step  {tokens / seconds:10,.0f} tok/s"
          f"   (1 process x {args.threads} threads)")  # fmt: skip
    tokens = 2 * tokens  # both processes' batches
    for spec in specs:
        record = json.loads((out / f"{spec.replace(':', '_zero')}.json").read_text())
        seconds = statistics.median(record["step_seconds"][2:])
        print(f"  {spec:12s} {seconds * 1e3:8.1f} ms/step  {tokens / seconds:10,.0f} tok/s"
              "   (2 processes x 1 thread, gloo)")  # fmt: skip


def main() -> None:
    p = _harness.parser(__doc__, rounds=7, threads=2, calls=10)
    p.add_argument("--two_process_steps", type=int, default=30, help="steps per strategy")
    p.add_argument("--skip_two_process", action="store_true", help="part 1 only")
    args = _harness.parse(p)
    part_one(args)
    if not args.skip_two_process:
        part_two(args)


if __name__ == "__main__":
    main()
