"""`uv run --package seq_models train | sample | eval`: a character language model on Shakespeare.

    uv run --package seq_models train                      # about 5 minutes on a 2-core CPU
    uv run --package seq_models sample --temperature 0.8   # text from the latest run
    uv run --package seq_models eval                       # its validation loss

`train` reads tinyshakespeare (or, when it is unavailable offline, this Python's standard
library: `--dataset pystdlib`) as `batch_size` contiguous streams, `seq_len` characters at a
time, carrying the LSTM state from one window to the next (truncated backpropagation through
time), with gradient clipping, Adam and a learning rate that decays linearly over the budget
(`--time-limit` seconds or `--max-steps`, whichever ends first). It evaluates on part of the
validation split every `--eval-interval` steps, on all of it at the end, and prints a sample.
"""

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from seq_models.charlm import (
    CharLM,
    CharLMConfig,
    CharVocab,
    TextPosition,
    detach_state,
    generate,
    lm_loss,
    tbptt_batches,
)
from seq_models.charlm import evaluate as evaluate_loss
from shared import datasets, sources
from shared.checkpoint import load_checkpoint, read_meta, save_checkpoint
from shared.config import config_from_dict, config_to_dict, option, parse_config
from shared.device import autocast
from shared.errors import CheckpointError, DatasetError, UsageError
from shared.fit import FitState
from shared.runs import Run, find_checkpoint
from shared.sources import SOURCE_HELP
from shared.trainer import (
    Resume,
    checkpoint_meta,
    continue_metrics,
    find_resume,
    restore,
    resumed_config,
    stop_and_exit,
)
from shared.training import RunOptions, StopSignals, lr_factor, prune_checkpoints, setup

STAGE = "seq_models"


@dataclass
class TrainConfig(RunOptions):
    """`seq_models train`: the run options shared by every stage (`shared.training`), then
    this stage's own. Its defaults differ where its figures were measured with them."""

    dataset: str = option(
        "tinyshakespeare",
        "text to learn: tinyshakespeare (falls back to pystdlib offline), pystdlib, or a source: "
        + SOURCE_HELP,
    )
    text_field: str = option("text", "the field holding the text, for jsonl/csv/parquet/hf")
    model: CharLMConfig = option(CharLMConfig, "the network")
    batch_size: int = option(32, "parallel text streams per step (B)", ge=1)
    seq_len: int = option(64, "characters per window: how far back gradients reach (T)", ge=1)
    lr: float = option(3e-3, "Adam's peak learning rate", gt=0)
    min_lr_ratio: float = option(
        0.1, "the learning rate decays linearly to this fraction of --lr", ge=0, le=1
    )
    warmup_steps: int = option(20, "steps of linear learning-rate warmup", ge=0)
    grad_clip: float = option(1.0, "clip the gradient's global norm to this (0: off)", ge=0)
    time_limit: float = option(
        265.0, "seconds of training before the final evaluation (0: none)", ge=0
    )
    eval_iters: int = option(8, "windows of the validation split per scheduled evaluation", ge=1)
    sample_length: int = option(300, "characters to print from the model at the end", ge=0)
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto", "auto: bf16 where this CPU or GPU has it natively, else fp32"
    )
    device: str = option("cpu", "cpu, cuda, mps or auto")
    threads: int = option(
        1, "torch CPU threads (0: the idle cores); 1: how this stage's figures were measured", ge=0
    )
    seed: int = option(0, "random seed for weights, window offsets and the sample")
    resume: str | None = option(None, "continue a run (its name, folder or a checkpoint folder)")


def load_text(name: str, text_field: str = "text") -> tuple[dict[str, str], str, str | None]:
    """The {"train", "val"} text of `name`, the name actually used, and a note for the log when
    that is not `name` (tinyshakespeare falls back to pystdlib, always available offline); a
    source (`text:PATH`, `jsonl:PATH`, ...: shared.sources) gives its own text."""
    if sources.is_source(name):
        return sources.text_corpus(name, text_field), name, None
    try:
        return datasets.load(name), name, None
    except DatasetError as error:
        if name != "tinyshakespeare":
            raise
        note = f"note: {name} is unavailable, so this run trains on pystdlib instead ({error})"
        return datasets.load("pystdlib"), "pystdlib", note


def learning_rate(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """Warmup, then a linear decay to lr * min_lr_ratio as the budget (steps or time) runs out:
    `shared.training.lr_factor`, the schedule every stage uses."""
    return cfg.lr * lr_factor(
        step,
        elapsed,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
        seconds=cfg.time_limit or None,
        decay="linear",
        min_ratio=cfg.min_lr_ratio,
    )


def train(argv: list[str]) -> None:
    """The written-out TBPTT loop (the stage's lesson); the setup, the checkpoint layout, Ctrl-C
    and resume are the pieces every stage shares (`shared.training`, `shared.trainer`)."""
    prog, description = "seq_models train", __doc__.split("\n\n")[0]
    cfg = parse_config(TrainConfig, argv, prog=prog, description=description)
    resume = None
    if cfg.resume:  # the run's own config, under this command's options
        resume = find_resume(STAGE, cfg.resume)
        cfg = resumed_config(TrainConfig, argv, prog, resume)
    env = setup(cfg)  # threads, device, precision (and why), seeds
    device, precision = env.device, env.precision
    splits, dataset, note = load_text(cfg.dataset, cfg.text_field)
    cfg.dataset = dataset  # the config printed and saved says what really runs
    vocab = CharVocab.from_text(splits["train"] + splits["val"])
    if resume is not None:  # before the run folder: a refused checkpoint leaves none behind
        check_resumable(resume, vocab)
    run = Run.start(STAGE, cfg, name=cfg.run_name)
    train_ids = vocab.encode(splits["train"]).to(device)  # (N_train,)
    val_ids = vocab.encode(splits["val"]).to(device)  # (N_val,)
    model = CharLM(len(vocab), cfg.model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # Where training stands: the step, the seconds, and in the text (`TextPosition`: the next
    # window of which epoch, its offset, the state the streams carry into it). A checkpoint
    # saves all of it, so a resumed run continues exactly.
    pos = TextPosition(cfg.seed, cfg.seq_len, device)
    state = FitState(sampler=pos)
    if resume is not None:
        restore(resume, model, opt, state)  # weights, Adam, position, every RNG
        continue_metrics(run, resume, state.step)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{dataset}: {len(train_ids):,} train / {len(val_ids):,} val characters, vocabulary "
        f"{len(vocab)}; model {n_params:,} parameters; "
        f"{env.precision_note} on {device}, {env.threads_note}",
        flush=True,
    )
    if note:  # last, just before training, where it cannot scroll away
        print(note, flush=True)
    meta = {"config": config_to_dict(cfg), "model": config_to_dict(cfg.model),
            "vocab": vocab.chars, "dataset": dataset}  # fmt: skip

    def precision_ctx():
        return autocast(device, precision)

    start = time.perf_counter() - state.elapsed  # a resumed run continues its time budget
    val_loss = float("nan")

    def finished() -> bool:
        over_time = cfg.time_limit and time.perf_counter() - start >= cfg.time_limit
        return bool(over_time or (cfg.max_steps and state.step >= cfg.max_steps) or stop.requested)

    # The loop stays written out here: carrying each stream's state from one window to the
    # next (truncated backpropagation through time) is this stage's lesson. The options, the
    # schedule, the checkpoints and the handling of Ctrl-C are the ones every stage shares.
    stop = StopSignals()
    with stop, run.progress(cfg.max_steps or None, desc="train", item_name="char") as bar:
        while not finished():
            windows = tbptt_batches(train_ids, cfg.batch_size, cfg.seq_len, pos.offset)
            for x, y in itertools.islice(windows, pos.window, None):  # (resumed: from `window`)
                lr = learning_rate(cfg, state.step, time.perf_counter() - start)
                for group in opt.param_groups:
                    group["lr"] = lr
                with precision_ctx():
                    logits, pos.carry = model(x, pos.carry)  # (B, T, V)
                loss = lm_loss(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                pos.carry = detach_state(pos.carry)  # carry the values, stop the gradients
                state.step, pos.window = state.step + 1, pos.window + 1
                bar.advance(loss=loss.item(), items=y.numel())
                run.log(state.step, loss=loss.item(), lr=lr, epoch=pos.epoch)
                if state.step % cfg.eval_interval == 0:
                    val_loss = evaluate_loss(
                        model, val_ids, cfg.batch_size, cfg.seq_len, cfg.eval_iters, precision_ctx
                    )
                    run.log(state.step, val_loss=val_loss)
                    elapsed = time.perf_counter() - start
                    bar.write(f"step {state.step:5d}  {elapsed:6.1f}s  val loss {val_loss:.4f}")
                if state.step % cfg.save_every == 0:
                    state.elapsed = time.perf_counter() - start
                    save(
                        run,
                        f"step_{state.step:06d}",
                        model,
                        opt,
                        {**meta, "val_loss": val_loss},
                        state,
                    )
                    prune_checkpoints(run.checkpoints, cfg.keep_checkpoints)
                if finished():
                    break
            else:  # the epoch is done: the next one reads windows with new edges, from zero
                pos.next_epoch()
    state.elapsed = time.perf_counter() - start
    if stop.requested:  # Ctrl-C or SIGTERM: keep what was trained, say how to go on
        saved = save(run, "interrupted", model, opt, {**meta, "val_loss": val_loss}, state)
        stop_and_exit(stop, state, saved, "uv run --package seq_models train", run.folder)
    val_loss = evaluate_loss(model, val_ids, cfg.batch_size, cfg.seq_len, None, precision_ctx)
    run.log(state.step, val_loss=val_loss, full_val_loss=val_loss)
    print(
        f"after {state.step} steps ({state.elapsed:.0f}s of training, {pos.epoch + 1} epochs "
        f"begun): val loss {val_loss:.4f} nats/char ({val_loss / np.log(2):.3f} bits/char) "
        f"over all {len(val_ids):,} validation characters",
        flush=True,
    )
    checkpoint = save(run, "final", model, opt, {**meta, "val_loss": val_loss}, state)
    run.plot_metrics("loss.png", ["loss", "val_loss"], title=f"char LSTM on {dataset}: nats/char")
    if cfg.sample_length:
        generator = torch.Generator().manual_seed(cfg.seed)
        prompt = "\n" if "\n" in vocab.index else vocab.chars[0]
        ids = generate(model, vocab.encode(prompt).to(device), cfg.sample_length, 0.8, generator)
        print(f"--- sample (temperature 0.8) ---\n{vocab.decode(ids)}\n---")
    run.finish({"checkpoint": checkpoint})


def check_resumable(resume: Resume, vocab: CharVocab) -> None:
    """Refuse a checkpoint of another text, or one saved before the one checkpoint layout
    (`sample` and `eval` still read those; resuming needs the position they kept elsewhere)."""
    if resume.meta["vocab"] != vocab.chars:
        raise CheckpointError(f"checkpoint {resume.checkpoint} was trained on another text")
    if "fit" not in resume.meta:
        raise CheckpointError(
            f"checkpoint {resume.checkpoint} was saved by an older seq_models: sample from it "
            "or evaluate it, or start a new run"
        )


def save(run: Run, name: str, model: CharLM, opt: Any, meta: dict[str, Any],
         state: FitState) -> Path:  # fmt: skip
    """checkpoints/<name> in the one layout: the stage's meta (what `load_model` reads), then
    the step, the seconds, the position in the text and every RNG (`checkpoint_meta`)."""
    return save_checkpoint(
        run.checkpoints / name,
        model.state_dict(),
        optimizer=opt.state_dict(),
        meta=checkpoint_meta(meta, state),
    )


# ----------------------------------------------------------------------------------------------
# Using a trained run


def load_model(run: str | None) -> tuple[CharLM, CharVocab, dict, Path]:
    """The model, vocabulary and checkpoint meta of a run (the latest when `run` is None)."""
    folder = find_checkpoint(STAGE, run)
    meta = read_meta(folder)
    model_cfg = config_from_dict(CharLMConfig, meta["model"], source=f"{folder}/meta.json")
    vocab = CharVocab(meta["vocab"])
    model = CharLM(len(vocab), model_cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ckpt = load_checkpoint(folder, expected=expected, framework="torch")
    model.load_state_dict(ckpt.model)
    return model.eval(), vocab, meta, folder


@dataclass
class SampleConfig:
    run: str | None = option(None, "run name or folder (default: the latest seq_models run)")
    prompt: str = option("", "text to continue (default: start of a line)")
    temperature: float = option(
        0.8, "below 1: safer and more repetitive; 0: always the likeliest", ge=0
    )
    length: int = option(500, "characters to generate", ge=0)
    seed: int = option(0, "random seed: the same seed gives the same text")


def sample(argv: list[str]) -> None:
    cfg = parse_config(
        SampleConfig, argv, prog="seq_models sample", description="Sample text from a trained run."
    )
    model, vocab, _, _ = load_model(cfg.run)
    prompt = cfg.prompt.replace("\\n", "\n") or "\n"
    if prompt == "\n" and "\n" not in vocab.index:
        prompt = vocab.chars[0]
    prompt_ids = vocab.encode(prompt)  # (P,)
    generator = torch.Generator().manual_seed(cfg.seed)
    ids = generate(model, prompt_ids, cfg.length, cfg.temperature, generator)
    print(cfg.prompt + vocab.decode(ids), flush=True)


@dataclass
class EvalConfig:
    run: str | None = option(None, "run name or folder (default: the latest seq_models run)")
    batch_size: int = option(32, "parallel streams the validation text is read as", ge=1)
    seq_len: int = option(64, "characters per window", ge=1)


def evaluate(argv: list[str]) -> None:
    cfg = parse_config(
        EvalConfig, argv, prog="seq_models eval", description="Validation loss of a trained run."
    )
    model, vocab, meta, folder = load_model(cfg.run)
    config = meta.get("config", {})
    splits, dataset, _ = load_text(meta.get("dataset", "tinyshakespeare"),
                                   config.get("text_field", "text"))  # fmt: skip
    if dataset != meta.get("dataset"):
        raise UsageError(f"{folder} was trained on {meta.get('dataset')!r}, which is unavailable")
    val_ids = vocab.encode(splits["val"])  # (N_val,)
    loss = evaluate_loss(model, val_ids, cfg.batch_size, cfg.seq_len)
    print(
        f"val loss {loss:.4f} nats/char ({loss / np.log(2):.3f} bits/char) over "
        f"{len(val_ids):,} characters of {dataset} ({folder})"
    )
