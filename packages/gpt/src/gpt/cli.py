"""`uv run --package gpt train | sample | eval`: a GPT on Shakespeare in a minute and a half.

    uv run --package gpt train                          # BPE tokens, ~87 s on a 2-core CPU
    uv run --package gpt train --tokenizer=char --model.variant=gpt2 --time-limit=300
    uv run --package gpt train --resume=RUN --max-steps=2000    # continue a run exactly
    uv run --package gpt sample --prompt="ROMEO:" --temperature=0.8 --top-k=40
    uv run --package gpt eval                           # val loss (per token and per character)
    uv run --package gpt eval --text-file=my.txt        # ... on any text

`train` writes runs/gpt/<name>/: config.json, metrics.jsonl, loss.png, tokenizer/tokenizer.json
and checkpoints/final (model and optimizer in safetensors, everything else in meta.json: the
model config, a reference to the tokenizer, the step, the elapsed time, every RNG state).
`sample` and `eval` read the latest run unless given `--run`.
"""

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from gpt.data import (
    TokenData,
    characters_in_windows,
    load_training_text,
    sequential_windows,
)
from gpt.generate import TextStreamer, generate
from gpt.runs import STAGE, load_run_model, run_folder_of
from gpt.train import LMTask, TrainConfig
from gpt.train_run import RENAMED, prepare
from shared.config import option, parse_config
from shared.device import (
    autocast,
    pick_device,
    resolve_precision,
)
from shared.errors import UsageError
from shared.trainer import train_command

__all__ = ["EvalConfig", "SampleConfig", "TrainConfig", "evaluate", "sample", "train"]


# ----------------------------------------------------------------------------------------------
# train


def train(argv: list[str]) -> None:
    """Train a GPT: `gpt.train_run.prepare` declares the task, `shared.trainer` runs it."""
    description = __doc__.split("\n\n")[0]
    train_command(STAGE, TrainConfig, argv, prepare, description=description, renamed=RENAMED)


# ----------------------------------------------------------------------------------------------
# sample


@dataclass
class SampleConfig:
    run: str | None = option(None, "run name, run folder or checkpoint (default: the latest run)")
    prompt: str = option("\n", "text to continue (\\n for a newline)")
    max_new_tokens: int = option(500, "tokens to generate", ge=0)
    temperature: float = option(
        0.8, "below 1: safer and more repetitive; 0: always the likeliest", ge=0
    )
    top_k: int | None = option(None, "sample only among the k likeliest tokens", ge=1)
    top_p: float | None = option(
        None, "sample among the fewest tokens holding this much probability", gt=0, le=1
    )
    repetition_penalty: float = option(
        1.0, "above 1: tokens already in the text become less likely", gt=0
    )
    stop: tuple[str, ...] = option((), "stop at any of these strings (comma-separated; \\n ok)")
    num_samples: int = option(1, "independent samples of the same prompt (a batch)", ge=1)
    seed: int = option(0, "random seed: the same seed gives the same text")
    no_cache: bool = option(False, "recompute the whole context every token (slow; for comparison)")
    device: str = option("cpu", "cpu, cuda, mps or auto")


def sample(argv: list[str]) -> None:
    cfg = parse_config(
        SampleConfig, argv, prog="gpt sample", description="Generate text from a trained run."
    )
    device = pick_device(cfg.device)
    model, tok, meta, folder = load_run_model(cfg.run, device)
    prompt_text = cfg.prompt.replace("\\n", "\n")
    prompt = tok.encode(prompt_text) if prompt_text else [0]
    if not prompt:
        raise UsageError(f"the prompt {cfg.prompt!r} encodes to no tokens")
    print(f"# {folder} (step {meta.get('step')}), seed {cfg.seed}", file=sys.stderr, flush=True)
    idx = torch.tensor([prompt] * cfg.num_samples, device=device)  # (N, P)
    stream = TextStreamer(tok.decode) if cfg.num_samples == 1 else None
    if stream is not None:
        sys.stdout.write(prompt_text)
    out = generate(
        model,
        idx,
        cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        repetition_penalty=cfg.repetition_penalty,
        stop=[stop.replace("\\n", "\n") for stop in cfg.stop] or None,
        decode=tok.decode,
        seed=cfg.seed,
        stream=stream,
        use_cache=not cfg.no_cache,
    )
    if stream is not None:
        stream.end()
        return
    for i, row in enumerate(out.tolist()):
        print(f"--- sample {i + 1} ---\n{prompt_text}{tok.decode(row[len(prompt) :])}")


# ----------------------------------------------------------------------------------------------
# eval


@dataclass
class EvalConfig:
    run: str | None = option(None, "run name, run folder or checkpoint (default: the latest run)")
    split: Literal["val", "train"] = option("val", "which split of the run's dataset")
    text_file: Path | None = option(None, "evaluate on this UTF-8 text file instead")
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto", "auto: bf16 where the CPU or GPU has it natively, else fp32"
    )
    device: str = option("cpu", "cpu, cuda, mps or auto")


def evaluate(argv: list[str]) -> None:
    cfg = parse_config(
        EvalConfig, argv, prog="gpt eval", description="Loss and perplexity of a trained run."
    )
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    model, tok, meta, folder = load_run_model(cfg.run, device)
    if cfg.text_file is not None:
        try:
            text, source = cfg.text_file.read_text(encoding="utf-8"), str(cfg.text_file)
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read --text-file {cfg.text_file}: {error}") from None
    else:
        dataset = meta.get("dataset", "tinyshakespeare")  # a registry name, or a text file
        as_file = Path(dataset) if Path(dataset).is_file() else None
        text = load_training_text(dataset, as_file)[0][cfg.split]
        source = f"{dataset} {cfg.split}"
    ids = torch.tensor(tok.encode(text), dtype=torch.long, device=device)
    if len(ids) <= model.config.block_size:
        raise UsageError(
            f"{source} has {len(ids)} tokens; evaluation needs more than the block size "
            f"({model.config.block_size})"
        )
    task = LMTask(TokenData(ids, ids), model.config, batch_size=64)
    loss = task.evaluate_text(model, ids, lambda: autocast(device, precision))
    n = sum(y.numel() for _, y in sequential_windows(ids, model.config.block_size, 64))
    per_char = loss * n / characters_in_windows(ids.cpu(), model.config.block_size, tok)
    print(f"run: {run_folder_of(folder)} (checkpoint {folder.name}, step {meta.get('step')})")
    print(
        f"{source}: loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f}, "
        f"{loss / math.log(2):.3f} bits/token, {per_char:.4f} nats/char over {n:,} tokens "
        f"({len(text) / len(ids):.2f} characters per token, {precision})"
    )
