"""`gpt train`'s run: the task declared once (`prepare`), and gpt's after-work.

`prepare(cfg)` reads the text, makes the tokenizer (or, resuming, reloads the run's) and hands
back a `shared.tasks.TrainingTask`: the `LMTask`, the model and optimizer factories, the
schedule, what a checkpoint must carry, and gpt's after-work. `gpt train` runs it through
`shared.trainer` (the plain loop); `training_kit train --task gpt` through DDP, FSDP or
DeepSpeed. Either way the checkpoints are gpt checkpoints: `gpt sample --run RUN` reads both.

gpt's after-work, in `LanguageModelRun`:

    finish    the final evaluation: --final_eval_tokens of the val split, per token and per
              character (the measure that compares tokenizers), inside the time limit
    report    a sample from the trained model (--sample_length tokens)
"""

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gpt.data import (
    TokenData,
    characters_in_windows,
    load_training_text,
    make_tokenizer,
    tokenizer_reference,
)
from gpt.generate import generate
from gpt.model import GPTConfig
from gpt.runs import STAGE, check_compatible
from gpt.train import (
    FinalEvalReserve,
    LMTask,
    TrainConfig,
    fused_attention,
    lr_factor,
    make_optimizer,
    model_config,
)
from shared.config import config_to_dict
from shared.errors import CheckpointError
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import Setup
from tokenizers_fromscratch import Tokenizer, load_tokenizer

RENAMED = {"max_iters": "max_steps", "warmup_iters": "warmup_steps"}  # issue #13


@dataclass
class LanguageModelRun:
    """What gpt's after-work needs to know about the run: its data, tokenizer and task."""

    cfg: TrainConfig
    data: TokenData
    tok: Tokenizer
    task: LMTask
    dataset: str
    train_text: str

    @property
    def model_config(self) -> GPTConfig:
        return self.task.model_config

    def checkpoint_meta(self) -> dict[str, Any]:
        """What `gpt.runs.load_run_model` needs beside the weights."""
        return {
            "config": config_to_dict(self.cfg),
            "model": asdict(self.model_config),
            "tokenizer": tokenizer_reference(self.tok),
            "dataset": self.dataset,
        }

    def write_run_files(self, folder: Path) -> None:
        self.tok.save(folder / "tokenizer")  # where `gpt sample` looks for it

    def check_resume(self, resume: Resume) -> None:
        """Refuse a checkpoint made with another tokenizer or model config."""
        check_compatible(resume.meta, self.model_config, self.tok, resume.checkpoint)

    def finish(self, trained: Trained) -> dict[str, float]:
        """The final evaluation, printed and logged; its numbers go into checkpoints/final."""
        task, data, tok, block = self.task, self.data, self.tok, self.model_config.block_size
        started = time.perf_counter()
        val_ids = data.val.to(trained.env.device)
        val_loss = task.evaluate_text(
            trained.model, val_ids, trained.precision_ctx, self.cfg.final_eval_tokens
        )
        eval_seconds = time.perf_counter() - started
        windows = task.eval_windows(data.val, self.cfg.final_eval_tokens)
        read = windows * block
        chars = characters_in_windows(data.val, block, tok, windows)
        per_char = val_loss * read / chars  # the measure that compares tokenizers
        state = trained.state
        trained.run.log(
            state.step, val_loss=val_loss, final_val_loss=val_loss, final_val_per_char=per_char
        )
        every = read == task.eval_windows(data.val) * block
        which = f"all {read:,}" if every else f"{read:,} of the {len(data.val):,}"
        print(
            f"after {state.step} steps ({state.elapsed:.0f}s of training + {eval_seconds:.1f}s "
            f"of evaluation): val loss {self.loss_text(val_loss, per_char, chars / read)} over "
            f"{which} validation tokens",
            flush=True,
        )
        return {"val_loss": val_loss, "val_per_char": per_char}

    def loss_text(self, val_loss: float, per_char: float, chars_per_token: float) -> str:
        if self.tok.kind == "char":
            return (
                f"{val_loss:.4f} nats/char ({val_loss / math.log(2):.3f} bits/char, "
                f"perplexity {math.exp(val_loss):.2f})"
            )
        return (
            f"{per_char:.4f} nats/char ({per_char / math.log(2):.3f} bits/char; "
            f"{val_loss:.4f} nats/token, {chars_per_token:.2f} characters per token)"
        )

    def plot_title(self, trained: Trained) -> str:
        cfg, m = self.cfg, self.model_config
        return (
            f"{m.n_layer}x{m.n_embd} {cfg.model.variant} GPT on {self.dataset}\n"
            f"{self.tok.kind} tokens ({self.tok.vocab_size:,}): loss per token; "
            f"final val {trained.final['val_per_char']:.4f} nats/char"
        )

    def report(self, trained: Trained) -> None:
        """A sample of --sample_length tokens, after a newline (or token 0)."""
        if not self.cfg.sample_length:
            return
        prompt = self.tok.encode("\n") if "\n" in self.train_text else [0]
        out = generate(
            trained.model,
            torch.tensor([prompt], device=trained.env.device),
            self.cfg.sample_length,
            temperature=self.cfg.sample_temperature,
            seed=self.cfg.seed,
        )
        text = self.tok.decode(out[0, len(prompt) :].tolist())
        print(
            f"--- sample (temperature {self.cfg.sample_temperature}) ---\n{text}\n---", flush=True
        )


def run_tokenizer(cfg: TrainConfig, splits: dict[str, str], resume: Resume | None) -> Tokenizer:
    """A new tokenizer for the run, or the resumed run's own (refused if of another kind)."""
    if resume is None:
        return make_tokenizer(cfg.tokenizer, splits["train"] + splits["val"], cfg.bpe_vocab_size)
    tok = load_tokenizer(resume.run_folder / "tokenizer")
    if tok.kind != cfg.tokenizer:
        raise CheckpointError(
            f"checkpoint {resume.checkpoint} was trained with a {tok.kind} tokenizer, "
            f"not --tokenizer={cfg.tokenizer}"
        )
    return tok


def prepare(
    cfg: TrainConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """gpt's `TrainingTask` from `gpt train`'s options: the text, the tokenizer, the task.

    `env` (the setup's device and precision) picks the attention kernel; without one (under
    training_kit, which picks precision itself) the fp32 choice.
    """
    splits, dataset, note = load_training_text(cfg.dataset, cfg.text_file, cfg.text_field)
    if cfg.text_file is None:
        cfg.dataset = dataset  # the config printed and saved says what really runs
    tok = run_tokenizer(cfg, splits, resume)
    data = TokenData.from_text(splits, tok)
    device_type, precision = (env.device.type, env.precision) if env else ("cpu", "fp32")
    model_cfg = model_config(cfg, tok.vocab_size)
    fused = fused_attention(cfg, device_type, precision)
    task = LMTask(data, model_cfg, cfg.batch_size, cfg.eval_iters, cfg.seed + 1, fused)
    lm = LanguageModelRun(cfg, data, tok, task, dataset, splits["train"])
    final_windows = task.eval_windows(data.val, cfg.final_eval_tokens)
    return TrainingTask(
        stage=STAGE,
        config=cfg,
        task=task,
        build_model=task.build_model,
        build_optimizer=lambda model: make_optimizer(model, cfg),
        schedule=lambda step, elapsed, seconds: lr_factor(cfg, step, elapsed, seconds),
        checkpoint_meta=lm.checkpoint_meta,
        write_run_files=lm.write_run_files,
        shard_units=lambda model: list(model.blocks),  # one FSDP unit per block
        grad_clip=cfg.grad_clip,
        item_name="tok",
        description=(
            f"{dataset}: {len(data.train):,} train / {len(data.val):,} val tokens ({tok.kind} "
            f"tokenizer, vocabulary {tok.vocab_size}); {model_cfg.n_layer} layers x "
            f"{model_cfg.n_embd}"
        ),
        note=note,
        reserve_seconds=FinalEvalReserve(
            task,
            final_tokens=final_windows * model_cfg.block_size,
            tokens_per_step=cfg.batch_size * model_cfg.block_size,
        ),
        compile=cfg.compile,
        check_resume=lm.check_resume,
        finish=lm.finish,
        plots={"loss.png": ["loss", "train_loss", "val_loss"]},
        plot_title=lm.plot_title,
        report=lm.report,
    )
