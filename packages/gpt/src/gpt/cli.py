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

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from gpt.data import (
    TokenData,
    characters_in_windows,
    load_training_text,
    make_tokenizer,
    sequential_windows,
    tokenizer_reference,
)
from gpt.generate import TextStreamer, generate
from gpt.runs import STAGE, check_compatible, load_run_model, run_folder_of
from gpt.train import LMTask, TrainConfig, make_optimizer, train_loop
from shared.checkpoint import load_checkpoint, read_meta, save_checkpoint
from shared.config import config_to_dict, option, parse_config
from shared.device import (
    autocast,
    pick_device,
    resolve_precision,
)
from shared.errors import CheckpointError, UsageError
from shared.fit import FitState
from shared.runs import Run, find_checkpoint
from shared.seeding import rng_state, seed_everything, set_rng_state
from shared.training import StopSignals, setup
from tokenizers_fromscratch import load_tokenizer

__all__ = ["EvalConfig", "SampleConfig", "TrainConfig", "evaluate", "sample", "train"]


# ----------------------------------------------------------------------------------------------
# train


RENAMED = {"max_iters": "max_steps", "warmup_iters": "warmup_steps"}  # issue #13


def resume_config(argv: list[str], meta: dict) -> TrainConfig:
    """The resumed run's config: the checkpoint's own, under this command's --config and options.

    `--resume RUN --max-steps=2000` keeps the run's model, data and schedule and changes only
    the step cap. A run saved under an option's old name keeps its value under the new one; an
    option this version of gpt no longer has at all is left behind.
    """
    saved = {RENAMED.get(k, k): v for k, v in meta.get("config", {}).items()}
    return parse_config(TrainConfig, argv, prog="gpt train", saved=saved)


def train(argv: list[str]) -> None:
    cfg = parse_config(TrainConfig, argv, prog="gpt train", description=__doc__.split("\n\n")[0])
    resume_from, resume_meta = None, None
    if cfg.resume:
        resume_from = find_checkpoint(STAGE, cfg.resume)
        resume_meta = read_meta(resume_from)
        cfg = resume_config(argv, resume_meta)
    env = setup(cfg)  # threads, device, precision (and why), seeds
    device, precision = env.device, env.precision

    # Data and tokenizer first: a missing dataset leaves no half-made run folder behind.
    splits, dataset, note = load_training_text(cfg.dataset, cfg.text_file)
    if cfg.text_file is None:
        cfg.dataset = dataset  # the config printed and saved says what really runs
    if resume_from is not None:
        tok = load_tokenizer(run_folder_of(resume_from) / "tokenizer")
        if tok.kind != cfg.tokenizer:
            raise CheckpointError(
                f"checkpoint {resume_from} was trained with a {tok.kind} tokenizer, "
                f"not --tokenizer={cfg.tokenizer}"
            )
    else:
        tok = make_tokenizer(cfg.tokenizer, splits["train"] + splits["val"], cfg.bpe_vocab_size)
    data = TokenData.from_text(splits, tok)

    seed_everything(cfg.seed)
    model_cfg = cfg.model.gpt_config(tok.vocab_size, device.type, precision)
    task = LMTask(data, model_cfg, cfg.batch_size, cfg.eval_iters, eval_seed=cfg.seed + 1)
    model = task.build_model().to(device)
    optimizer = make_optimizer(model, cfg)
    state = FitState(generator=torch.Generator().manual_seed(cfg.seed))
    earlier_metrics: list[dict] = []
    if resume_from is not None:
        check_compatible(resume_meta, model_cfg, tok, resume_from)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        ckpt = load_checkpoint(resume_from, expected=expected, framework="torch")
        model.load_state_dict(ckpt.model)
        # Loading puts back every group's saved settings; this command's own (a new --lr, say)
        # must win, as they do in the printed config.
        settings = [
            {k: g[k] for k in ("peak_lr", "weight_decay", "betas", "momentum") if k in g}
            for g in optimizer.param_groups
        ]
        optimizer.load_state_dict(ckpt.optimizer)
        for group, ours in zip(optimizer.param_groups, settings, strict=True):
            group.update(ours)
        state.step, state.elapsed = ckpt.meta["step"], ckpt.meta["elapsed"]
        state.generator.set_state(torch.tensor(ckpt.meta["data_generator"], dtype=torch.uint8))
        set_rng_state(ckpt.meta["rng"])
        earlier_metrics = [m for m in Run(run_folder_of(resume_from)).metrics()]
        earlier_metrics = [m for m in earlier_metrics if m["step"] <= state.step]

    run = Run.start(STAGE, cfg, name=cfg.run_name)
    tok.save(run.folder / "tokenizer")
    if earlier_metrics:  # the resumed run's curve starts where the old one stopped
        with open(run.metrics_path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(m) + "\n" for m in earlier_metrics)
    n_params = model.num_parameters()
    print(
        f"{dataset}: {len(data.train):,} train / {len(data.val):,} val tokens "
        f"({tok.kind} tokenizer, vocabulary {tok.vocab_size}); model {n_params:,} parameters "
        f"({model.num_parameters(non_embedding=True):,} without embeddings); "
        f"{env.precision_note} on {device}, {env.threads_note}",
        flush=True,
    )
    if resume_from is not None:
        print(f"resumed from {resume_from} at step {state.step}", flush=True)
    if note:  # last, just before training, where it cannot scroll away
        print(note, flush=True)

    def checkpoint_meta(extra: dict | None = None) -> dict:
        return {
            "config": config_to_dict(cfg),
            "model": asdict(model_cfg),
            "tokenizer": tokenizer_reference(tok),
            "dataset": dataset,
            "step": state.step,
            "elapsed": state.elapsed,
            "data_generator": state.generator.get_state().tolist(),
            "rng": rng_state(),
            **(extra or {}),
        }

    def save(s: FitState, name: str | None = None, extra: dict | None = None) -> Path:
        return save_checkpoint(
            run.checkpoints / (name or f"step_{s.step:06d}"),
            model.state_dict(),
            optimizer=optimizer.state_dict(),
            meta=checkpoint_meta(extra),
        )

    forward_model = torch.compile(model) if cfg.compile else model
    # The signals stay caught until the final checkpoint is written: a Ctrl-C during the final
    # evaluation lets it finish (a second or two) rather than lose the run.
    with StopSignals() as stop:
        state = train_loop(
            task, model, optimizer, cfg, run, state, device, precision, save, forward_model, stop
        )
        if stop.requested:  # Ctrl-C or SIGTERM: keep every step trained so far, say how to go on
            checkpoint = save(state, "interrupted")
            print(
                f"interrupted at step {state.step} ({state.elapsed:.0f}s of training); saved "
                f"{checkpoint}\nresume with: uv run --package gpt train --resume={run.folder}",
                flush=True,
            )
            raise SystemExit(stop.exit_code)

        def precision_ctx():
            return autocast(device, precision)

        eval_started = time.perf_counter()
        val_loss = task.evaluate_text(
            model, data.val.to(device), precision_ctx, cfg.final_eval_tokens
        )
        eval_seconds = time.perf_counter() - eval_started
        windows = task.eval_windows(data.val, cfg.final_eval_tokens)
        read = windows * model_cfg.block_size
        chars = characters_in_windows(data.val, model_cfg.block_size, tok, windows)
        per_char = val_loss * read / chars  # the measure that compares tokenizers
        run.log(state.step, val_loss=val_loss, final_val_loss=val_loss, final_val_per_char=per_char)
        which = (
            f"all {read:,}"
            if read == task.eval_windows(data.val) * model_cfg.block_size
            else (f"{read:,} of the {len(data.val):,}")
        )
        if tok.kind == "char":
            loss_text = (
                f"{val_loss:.4f} nats/char ({val_loss / math.log(2):.3f} bits/char, "
                f"perplexity {math.exp(val_loss):.2f})"
            )
        else:
            loss_text = (
                f"{per_char:.4f} nats/char ({per_char / math.log(2):.3f} bits/char; "
                f"{val_loss:.4f} nats/token, {chars / read:.2f} characters per token)"
            )
        print(
            f"after {state.step} steps ({state.elapsed:.0f}s of training + {eval_seconds:.1f}s of "
            f"evaluation): val loss {loss_text} over {which} validation tokens",
            flush=True,
        )
        checkpoint = save(state, "final", {"val_loss": val_loss, "val_per_char": per_char})
    if stop.requested:  # the signal came during the final evaluation: its checkpoint is saved
        print(f"interrupted after the final checkpoint {checkpoint}", flush=True)
        raise SystemExit(stop.exit_code)
    run.plot_metrics(
        "loss.png",
        ["loss", "train_loss", "val_loss"],
        title=(
            f"{model_cfg.n_layer}x{model_cfg.n_embd} {cfg.model.variant} GPT on {dataset}\n"
            f"{tok.kind} tokens ({tok.vocab_size:,}): loss per token; "
            f"final val {per_char:.4f} nats/char"
        ),
    )
    if cfg.sample_length:
        prompt = tok.encode("\n") if "\n" in splits["train"] else [0]
        out = generate(
            model,
            torch.tensor([prompt], device=device),
            cfg.sample_length,
            temperature=cfg.sample_temperature,
            seed=cfg.seed,
        )
        text = tok.decode(out[0, len(prompt) :].tolist())
        print(f"--- sample (temperature {cfg.sample_temperature}) ---\n{text}\n---", flush=True)
    run.finish({"checkpoint": checkpoint})


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
