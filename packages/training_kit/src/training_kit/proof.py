"""Proof that every strategy takes the same steps: one launch, each strategy in turn.

    python -m training_kit.proof OUT_FOLDER ddp fsdp deepspeed:1 deepspeed:2 deepspeed:3 \\
        -- --task gpt --optimizer=adamw --max_steps=4 ...      (under the elastic launcher)

(the options after the first `--` are `training_kit train`'s, with its own `--` for a task
option named like a kit option).

Each strategy trains the same task from the same seed for the same steps; rank 0 writes the
per-step losses and seconds (`<name>.json`) and the final weights (`<name>.safetensors`) into
OUT_FOLDER. `tools/bench/training_kit_overhead.py` reads the seconds.
The tests compare them with each other and with `single` run in the test's own process with
`--accumulation_steps` equal to the number of processes (`run_strategy`), which must take
exactly the steps of DDP. One launch for all of them keeps CI short: starting a process that
imports torch, Accelerate and DeepSpeed costs more than the training here.
"""

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist
from safetensors.torch import save_file

from shared.seeding import seed_everything
from shared.tasks import TrainingTask, load_training_task
from shared.training import setup
from training_kit.loop import train
from training_kit.options import KitOptions, parse_kit, split_argv
from training_kit.worker import Silent, join_group, make_engine


def run_strategy(
    kit: KitOptions, training: TrainingTask, step_seconds: list[float] | None = None
) -> tuple[list[float], dict[str, Any]]:
    """(the per-step losses, the final weights on rank 0 (else {})) of one strategy;
    `step_seconds` gets the wall time of each step after the first."""
    env = setup(training.config)
    seed_everything(training.config.seed)  # the same initial weights for every strategy
    model = training.build_model().to(env.device)
    engine = make_engine(kit, training, model, env.precision)
    engine.check_sharding()
    losses: list[float] = []
    last = [time.perf_counter()]

    def log(step: int, **metrics: Any) -> None:
        if "loss" in metrics:
            losses.append(metrics["loss"])
            now = time.perf_counter()
            if step_seconds is not None and step > 1:
                step_seconds.append(now - last[0])
            last[0] = now

    train(engine, training, kit.accumulation_steps, env.device, env.precision, log, Silent(),
          save=lambda state, name: None)  # fmt: skip
    weights = engine.full_state_dict() or {}
    return losses, weights


def name_of(spec: str) -> str:
    return spec.replace(":", "_zero")  # deepspeed:3 -> deepspeed_zero3


def main(argv: list[str]) -> None:
    split = argv.index("--")
    out, specs, rest = Path(argv[0]), argv[1:split], argv[split + 1 :]
    kit_argv, stage_argv = split_argv(rest)
    base = parse_kit(kit_argv)
    rank, world_size = join_group(KitOptions(strategy="ddp", num_processes=world_size_env()))
    for spec in specs:
        # A fresh task each time: an epoch sampler remembers where the last strategy left it.
        training = load_training_task(base.task, stage_argv)
        training.config.threads = 1
        strategy, _, stage = spec.partition(":")
        kit = KitOptions(
            task=base.task,
            strategy=strategy,  # type: ignore[arg-type]
            zero_stage=int(stage) if stage else None,
            num_processes=world_size,
            accumulation_steps=base.accumulation_steps,
        )
        seconds: list[float] = []
        losses, weights = run_strategy(kit, training, seconds)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            record = {"losses": losses, "step_seconds": seconds}
            (out / f"{name_of(spec)}.json").write_text(json.dumps(record))
            save_file({k: v.clone().contiguous() for k, v in weights.items()},
                      str(out / f"{name_of(spec)}.safetensors"))  # fmt: skip
        dist.barrier()
    dist.destroy_process_group()


def world_size_env() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


if __name__ == "__main__":
    main(sys.argv[1:])
