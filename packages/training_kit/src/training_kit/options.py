"""The kit's own options, apart from the stage's: `--task`, `--strategy` and how to launch.

    uv run --package training_kit train --task gpt --strategy deepspeed --zero_stage 3 \\
        --num_processes 2  --optimizer=adamw --max_steps=200
        ^ the kit's options                 ^ gpt train's own options, passed to its task

Every option the kit does not know goes to the stage (and everything after a bare `--`, for a
stage option that has a kit option's name, like bert's `--task`), which parses it as its own
`train` would: `--max_steps`, `--time_limit`, `--seed`, `--run_name` and the rest mean what
they mean there (`shared.training.RunOptions`).
"""

import os
from dataclasses import dataclass, fields
from typing import Literal

from shared.config import option, parse_config
from shared.errors import ConfigError


@dataclass
class KitOptions:
    """How to run a stage's task: which engine, on how many processes."""

    task: str = option("gpt", "the stage whose task to train (the installed ones: --list_tasks)")
    strategy: Literal["single", "ddp", "fsdp", "deepspeed"] = option(
        "single", "single process, torch DDP through Accelerate, torch FSDP2, or DeepSpeed ZeRO"
    )
    zero_stage: int | None = option(
        None, "deepspeed only: 0 (DDP), 1 (optimizer states split), 2 (+ gradients), 3 (+ weights)",
        ge=0, le=3,
    )  # fmt: skip
    num_processes: int = option(1, "worker processes on this machine (gloo on a CPU)", ge=1)
    accumulation_steps: int = option(1, "micro-batches per optimizer step, per process", ge=1)
    tracker: Literal["none", "tensorboard", "mlflow", "wandb"] = option(
        "none", "also log through this Accelerate tracker, into the run folder (offline)"
    )
    port: int = option(0, "rendezvous port on 127.0.0.1 (0: a free one)", ge=0, le=65535)
    resume: str | None = option(
        None,
        "continue a kit run (its folder or name) from its latest checkpoint, under any "
        "strategy but deepspeed; the run's options are kept, those given here win",
    )
    list_tasks: bool = option(False, "print the tasks the installed stages offer, and exit")
    run_folder: str | None = option(None, "(set by the launcher for its workers)")

    def __post_init__(self) -> None:
        if self.strategy == "deepspeed" and self.zero_stage is None:
            self.zero_stage = 2
        if self.strategy != "deepspeed" and self.zero_stage is not None:
            raise ConfigError(
                f"--zero_stage is DeepSpeed's option; with --strategy {self.strategy} drop it "
                "(or use --strategy deepspeed)"
            )
        if self.strategy == "single" and self.num_processes != 1:
            raise ConfigError(
                f"--strategy single runs one process, not {self.num_processes}; "
                "use --strategy ddp, fsdp or deepspeed for more"
            )


KIT_KEYS = {f.name for f in fields(KitOptions)}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the kit's arguments, the stage's): an option goes to the kit if its name is the kit's;
    everything after a bare `--` goes to the stage, for a stage option with a kit option's name
    (`--task bert_finetune -- --task mrpc`: the kit's task, then bert's GLUE task).

    `--key=value` and `--key value` both work.
    """
    kit: list[str] = []
    stage: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            stage += argv[i:]
            break
        name, has_value, _ = token[2:].partition("=")
        key = name.replace("-", "_")
        if token.startswith("--") and key in KIT_KEYS:
            kit.append(token)
            takes_value = key != "list_tasks"
            if not has_value and takes_value and i < len(argv) and not argv[i].startswith("--"):
                kit.append(argv[i])
                i += 1
        else:
            stage.append(token)
    return kit, stage


def kit_argv(kit: KitOptions) -> list[str]:
    """The options as a command line again: what the launcher passes its workers."""
    argv = []
    for key, value in vars(kit).items():
        if value is None or key == "list_tasks":
            continue
        argv.append(f"--{key}={str(value).lower() if isinstance(value, bool) else value}")
    return argv


def parse_kit(argv: list[str]) -> KitOptions:
    return parse_config(KitOptions, argv, prog="training_kit train")


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
