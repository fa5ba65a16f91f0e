"""The policy and its reference: what DPO and GRPO start from.

Both start from a chat run (`gpt sft`'s, or another post-trained one): the policy is that run,
trained further (in full or with LoRA, as `gpt.chat.sft.SFTRun` builds it), and the
reference is that run again, frozen. Dropout is switched off in the policy: both methods
compare the policy's log-probabilities with another model's (or with its own a moment ago,
in GRPO's ratio), and random masks would make the comparison noisy; at the first step the
ratio must be exactly 1.
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt.chat.format import END
from gpt.chat.sft import FineTuneOptions, SFTRun, sft_optimizer
from gpt.runs import load_run_model, run_folder_of
from shared.errors import UsageError
from shared.tasks import TrainingTask
from tokenizers_fromscratch import Tokenizer, load_tokenizer


def chat_run_tokenizer(checkpoint: Path, option_name: str = "--init") -> Tokenizer:
    """The tokenizer of a chat run; a run that has no chat tokens is refused (SFT first)."""
    tok = load_tokenizer(run_folder_of(checkpoint) / "tokenizer")
    if END not in getattr(tok, "added_special", []):
        raise UsageError(f"{option_name} {checkpoint}: not a chat run (no chat tokens); "
                         "fine-tune it with `gpt sft` first")  # fmt: skip
    return tok


def frozen_reference(base: Path) -> torch.nn.Module:
    """The run the policy starts from, loaded again and frozen: pi_ref."""
    reference, _, _, _ = load_run_model(str(base), torch.device("cpu"))
    return reference.eval().requires_grad_(False)


def without_dropout(model: nn.Module) -> nn.Module:
    """`model` with every dropout (the layers', and attention's own rate) set to 0."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
    return model


def post_training_task(cfg: FineTuneOptions, job: SFTRun, task: Any, command: str,
                       **own: Any) -> TrainingTask:  # fmt: skip
    """What `dpo` and `rl` declare alike: the policy as `job` (SFT's run) builds it, without
    dropout, and the frozen reference beside it (both set on `task`); SFT's optimizer, schedule
    and checkpoints; a final evaluation. `own`: the command's fields (its plots, its bar)."""

    def build_model() -> nn.Module:
        task.reference = frozen_reference(job.base)
        task.policy = without_dropout(job.build_model())
        return task.policy

    shared_fields: dict[str, Any] = dict(
        stage="gpt", config=cfg, task=task, build_model=build_model,
        build_optimizer=lambda model: sft_optimizer(cfg, model), schedule=job.schedule,
        checkpoint_meta=job.checkpoint_meta, write_run_files=job.write_run_files,
        shard_units=lambda model: list(model.blocks), grad_clip=cfg.grad_clip,
        evaluate_at_end=True, step_metrics=task.step_metrics,
        resume_command=f"uv run --package gpt {command}",
        saved_weights=job.saved_weights, load_saved_weights=job.load_saved_weights,
    )  # fmt: skip
    return TrainingTask(**{**shared_fields, **own})
