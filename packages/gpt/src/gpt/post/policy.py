"""The policy and its reference: what DPO and GRPO start from.

Both start from a chat run (`gpt sft`'s, or another post-trained one): the policy is that run,
trained further (in full or with LoRA, as `gpt.chat.sft.SFTRun` builds it), and the
reference is that run again, frozen. Dropout is switched off in the policy: both methods
compare the policy's log-probabilities with another model's (or with its own a moment ago,
in GRPO's ratio), and random masks would make the comparison noisy; at the first step the
ratio must be exactly 1.
"""

from pathlib import Path

import torch
from torch import nn

from gpt.chat.format import END
from gpt.runs import load_run_model, run_folder_of
from shared.errors import UsageError
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
