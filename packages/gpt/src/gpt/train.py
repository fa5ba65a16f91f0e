"""Training a GPT on text: the task (what to learn) apart from the loop (how to learn it).

`LMTask` is everything about language modelling and nothing about optimisation: it builds the
model, draws batches, computes the loss and evaluates. `gpt.train_run.prepare` packs it with the
optimizer, the schedule and the final evaluation's time reserve; `shared.trainer` runs it (the
plain loop, `shared.fit.fit`) and `training_kit` (a later stage) under Accelerate or DeepSpeed.

    for step in range(...):                        until --max-steps or --time-limit
        lr = peak * lr_factor(cfg, step, elapsed)  linear warmup, then linear (or cosine) decay
        x, y = task.batch("train", generator)      B random windows of T tokens
        with autocast(precision):                  bf16 matmuls where bf16 is native, else fp32
            loss = task.loss(model, (x, y))        mean next-token cross-entropy
        loss.backward(); clip_grad_norm_(1.0); optimizer.step()
        every --eval-interval steps: train and val loss on --eval-iters batches each
    then the final evaluation: --final-eval-tokens of the val split, inside the time limit

Why the time limit covers the final evaluation: a promise of "val loss X within N seconds"
must hold on a slow CPU as on a fast one. The evaluation is capped (about 65k tokens in windows
spread over the split, not all of it), and the loop stops training early enough to pay for it
at the speed the scheduled estimates measured.

Why a schedule that follows the clock: with a time budget the number of steps is unknown in
advance, so the decay runs on `max(step / max_steps, elapsed / time_limit)`: the learning rate
always reaches its minimum as the budget ends, on a fast machine or a slow one. With a step
budget alone (`--time-limit=0 --max-steps=N`), every step's learning rate depends on the step
only, which is what makes a resumed run repeat the uninterrupted one exactly (tested).

Why Muon for the matrices inside the blocks (the default): Adam scales each weight's update
on its own, so a matrix's update is dominated by a few directions, the ones its gradient
happens to point along. Muon (Keller Jordan, 2024; `gpt.muon`) takes the momentum of a
matrix's gradient and replaces it by the nearest orthogonal matrix (five Newton-Schulz
iterations, a handful of small matmuls, in bf16 only where bf16 is native): every direction
of the update moves at the same rate. At equal steps on the default model it reaches 1.60
where AdamW reaches 1.73 (docs/measurements.md). Embeddings, the output layer and the norm
gains are not such matrices (a row per token, or a vector); AdamW keeps training them.

Why these defaults (BPE tokens, momentum 0.9, an output layer tied to the embedding with weight
decay 0.3, linear decay to zero): equal-step sweeps on a 2-core CPU (docs/measurements.md,
issue #19) found each better than the alternatives. BPE gives each step about 2.6 characters a
token instead of one; the model then reads the 1M-character text about four times in 80 s, and
the decay on the one shared matrix holds back that overfitting better than two untied ones
without.

Why weight decay on the matrices only: biases and norm gains are not the weights that overfit
by growing (as in the transformer stage's loop). With Muon that leaves the embedding (and an
untied output layer). Muon's matrices get none: at Muon's learning rate, decay 0.1 would
shrink them by about a third within the default run.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from gpt.data import TokenData, sequential_windows
from gpt.model import GPT, GPTConfig, lm_loss
from gpt.muon import Muon
from shared.config import option
from shared.device import fast_dtype
from shared.fit import FitState
from shared.sources import SOURCE_HELP
from shared.training import Decay, RunOptions
from shared.training import lr_factor as schedule_factor


@dataclass
class TrainingGPT(GPTConfig):
    """`GPTConfig` itself, as `gpt train`'s `--model.*` options: only two defaults differ, the
    variant (modern) and the context (64 tokens, what 80 s on a 2-core CPU trains best)."""

    variant: Literal["gpt2", "modern"] = option(
        "modern", "gpt2: learned positions, LayerNorm, GELU, biases; modern: RoPE, RMSNorm, SwiGLU"
    )
    block_size: int = option(64, "context length in tokens", ge=1)
    vocab_size: int = option(65, "set by the tokenizer (--bpe_vocab_size for BPE)", ge=1)

    def __post_init__(self) -> None:
        if self.vocab_size != 65:
            raise ValueError(
                "--model.vocab_size comes from the run's tokenizer; choose --tokenizer and "
                "--bpe_vocab_size instead"
            )
        super().__post_init__()


def model_config(cfg: "TrainConfig", vocab_size: int) -> GPTConfig:
    """The run's model: the `--model.*` options with the tokenizer's vocabulary, as the plain
    `GPTConfig` a checkpoint saves."""
    return GPTConfig(**{**asdict(cfg.model), "vocab_size": vocab_size})


def fused_attention(cfg: "TrainConfig", device_type: str = "cpu", precision: str = "fp32") -> bool:
    """--attention on this device and precision (a run-time choice, not saved with the model)."""
    naive_pays = device_type == "cpu" and precision == "bf16"
    return cfg.attention == "fused" or (cfg.attention == "auto" and not naive_pays)


@dataclass
class TrainConfig(RunOptions):
    """Everything `gpt train` can be told; the defaults are tuned for 90 s on a 2-core CPU.

    The run options (step cap, time limit, evaluation and checkpoint intervals, precision,
    device, threads, seed, run name) come from `shared.training.RunOptions`, with the
    same names and meanings as in every other stage.
    """

    dataset: str = option(
        "tinyshakespeare",
        "text to learn: tinyshakespeare (falls back to pystdlib offline), pystdlib, or a source: "
        + SOURCE_HELP,
    )
    text_field: str = option("text", "the field holding the text, for jsonl/csv/parquet/hf")
    text_file: Path | None = option(None, "the older spelling of --dataset text:PATH")
    tokenizer: Literal["char", "bpe"] = option(
        "bpe",
        "bpe: byte-level, trained for the run (about 2.6 characters a token); char: one id each",
    )
    bpe_vocab_size: int = option(
        2048, "vocabulary of the BPE tokenizer (trained for the run)", ge=256
    )
    model: TrainingGPT = option(TrainingGPT, "the network (gpt.model.GPTConfig)")
    attention: Literal["auto", "fused", "naive"] = option(
        "auto",
        "the attention kernel: fused (torch's) or naive (matmul + softmax); auto: naive on a CPU "
        "in bf16, where it trains faster at this size (README), fused elsewhere",
    )
    batch_size: int = option(
        32, "windows per optimizer step (B); tokens/step = B x block_size", ge=1
    )
    time_limit: float = option(
        80.0, "seconds for training and the final evaluation together (0: no time limit)", ge=0
    )
    optimizer: Literal["muon", "adamw", "sgd"] = option(
        "muon", "update rule; muon: Muon for the blocks' matrices, AdamW for the rest"
    )
    lr: float = option(3e-3, "peak learning rate (with muon: of the embeddings and norms)", gt=0)
    muon_lr: float = option(0.02, "peak learning rate of Muon's matrices", gt=0)
    muon_momentum: float = option(0.9, "Muon: momentum of the gradient average")
    min_lr_ratio: float = option(0.0, "the schedule ends at lr * min_lr_ratio", ge=0, le=1)
    warmup_steps: int = option(50, "steps of linear warmup from lr / warmup_steps", ge=0)
    decay: Decay = option("linear", "shape of the decay")
    weight_decay: float = option(0.3, "AdamW's decoupled weight decay (matrices only)")
    beta1: float = option(0.9, "AdamW: momentum of the gradient average")
    beta2: float = option(0.99, "AdamW: of the squared-gradient average (0.99 suits small batches)")
    momentum: float = option(0.9, "SGD only: momentum")
    grad_clip: float = option(1.0, "clip the gradient's global norm to this (0: off)", ge=0)
    eval_iters: int = option(4, "batches per split in each scheduled estimate", ge=1)
    final_eval_tokens: int = option(
        65536, "validation tokens in the final evaluation, in windows spread evenly (0: all)", ge=0
    )
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto", "auto: bf16 autocast where the CPU or GPU has it natively, else fp32"
    )
    compile: bool = option(False, "torch.compile the model (pays off only for long runs)")
    sample_length: int = option(300, "tokens to print from the model at the end (0: none)")
    sample_temperature: float = option(0.8, "temperature of that sample")
    resume: str | None = option(None, "continue a run (its name, folder or a checkpoint folder)")


# ----------------------------------------------------------------------------------------------
# The task


@dataclass
class LMTask:
    """Next-token prediction on a tokenized text: model factory, batches, loss, evaluation.

    It is a `shared.fit.Task`: `train_batch`, `count`, `loss` and `evaluate` are what `fit`
    calls. The scheduled evaluation also times itself, so the loop can predict how long the
    final evaluation will take (`eval_seconds_per_token`).
    """

    data: TokenData
    model_config: GPTConfig
    batch_size: int
    eval_iters: int = 4  # batches per split in each scheduled evaluation
    eval_seed: int = 0  # the same evaluation batches every time
    fused_attention: bool = True  # the attention kernel (a run-time choice: see gpt.model)
    eval_seconds_per_token: float | None = field(default=None, init=False)  # measured

    def build_model(self) -> GPT:
        return GPT(self.model_config, fused_attention=self.fused_attention)

    def batch(self, split: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.data.batch(split, self.batch_size, self.model_config.block_size, generator)

    def train_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.batch("train", generator)

    def count(self, batch: tuple[Tensor, Tensor]) -> int:
        return batch[1].numel()  # B * T next-token predictions

    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        """Train and val loss on `eval_iters` batches each, timed."""
        started = time.perf_counter()
        est = self.estimate(model, self.eval_iters, self.eval_seed, precision_ctx)
        tokens = 2 * self.eval_iters * self.batch_size * self.model_config.block_size
        self.eval_seconds_per_token = (time.perf_counter() - started) / tokens
        return {"train_loss": est["train"], "val_loss": est["val"]}

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch  # (B, T) each
        return lm_loss(model(x), y)  # () mean over B * T predictions

    @torch.no_grad()
    def estimate(self, model: torch.nn.Module, iters: int, seed: int, precision_ctx) -> dict:
        """Mean loss on `iters` random batches of each split; the same batches every time."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out = {}
        for split in ("train", "val"):
            g = torch.Generator().manual_seed(seed)
            losses = []
            for _ in range(iters):
                x, y = self.batch(split, g)  # drawn on the CPU, like the training batches
                with precision_ctx():
                    losses.append(self.loss(model, (x.to(device), y.to(device))).item())
            out[split] = sum(losses) / len(losses)
        model.train(was_training)
        return out

    def eval_windows(self, ids: Tensor, max_tokens: int = 0) -> int:
        """How many windows `evaluate_text(..., max_tokens)` reads from `ids` (0: every one)."""
        T = self.model_config.block_size
        every = (len(ids) - 1) // T
        return min(every, max_tokens // T) if max_tokens else every

    @torch.no_grad()
    def evaluate_text(
        self, model: torch.nn.Module, ids: Tensor, precision_ctx, max_tokens: int = 0
    ) -> float:
        """Mean loss over non-overlapping windows of `ids`: every one (exact), or about
        `max_tokens` tokens' worth spread evenly over it."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        windows = self.eval_windows(ids, max_tokens)
        for x, y in sequential_windows(ids, self.model_config.block_size, 64, windows):
            with precision_ctx():
                total += self.loss(model, (x, y)).item() * y.numel()
            count += y.numel()
        model.train(was_training)
        if count == 0:
            return float("nan")
        return total / count


class MuonWithAdamW:
    """Muon for the blocks' matrices and AdamW for everything else, stepped as one optimizer.

    The loop and the checkpoints need only what every torch optimizer has: `param_groups`,
    `zero_grad`, `step`, `state_dict` and `load_state_dict`.
    """

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def make_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.Optimizer | MuonWithAdamW:
    """The optimizer `cfg.optimizer` names; each group remembers its peak rate as "peak_lr"."""
    muon_params = []
    if cfg.optimizer == "muon":  # the attention and MLP matrices
        muon_params = [p for p in model.blocks.parameters() if p.dim() == 2]
    taken = {id(p) for p in muon_params}
    rest = [p for p in model.parameters() if id(p) not in taken]
    groups = [  # weight decay on matrices only (see the module docstring)
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    else:
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if cfg.optimizer == "muon":
        muon = Muon(  # Newton-Schulz in bf16 only where this machine has native bf16
            muon_params,
            lr=cfg.muon_lr,
            momentum=cfg.muon_momentum,
            weight_decay=0.0,
            ns_dtype=fast_dtype(next(model.parameters()).device),
        )
        optimizer = MuonWithAdamW(muon, optimizer)
    for group in optimizer.param_groups:
        group["peak_lr"] = group["lr"]
    return optimizer


def lr_factor(cfg: TrainConfig, step: int, elapsed: float, seconds: float | None = None) -> float:
    """The learning rate over its peak: `shared.training.lr_factor` with this run's budget
    (`seconds` of training, as `fit` passes it: by default the time limit, if any)."""
    if seconds is None:
        seconds = cfg.time_limit or None
    return schedule_factor(
        step,
        elapsed,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
        seconds=seconds,
        decay=cfg.decay,
        min_ratio=cfg.min_lr_ratio,
    )


def predict_eval_seconds(
    tokens: int, eval_seconds_per_token: float | None, train_seconds_per_token: float | None
) -> float:
    """How long evaluating `tokens` tokens will take: at the measured evaluation speed, else at
    a third of the training speed (forward alone, against forward + backward), else 0."""
    if eval_seconds_per_token is not None:
        return tokens * eval_seconds_per_token
    if train_seconds_per_token is not None:
        return tokens * train_seconds_per_token / 3
    return 0.0


@dataclass
class FinalEvalReserve:
    """The seconds to keep free for the final evaluation, asked by `fit` before every step.

    `final_tokens` tokens at the speed the scheduled evaluations measured (`task`'s
    `eval_seconds_per_token`), or, before the first of them, at a third of the training speed.
    That speed leaves out the first step this process takes: with `--compile` it holds
    torch.compile's tracing and code generation (tens of seconds, against a fraction of a second
    for a compiled step), and counting it would reserve a large share of a short time limit for
    an evaluation that takes a second or two. Without `--compile` the first step is also the
    slowest (allocations, first calls), so it is left out there too.
    """

    task: LMTask  # anything with `eval_seconds_per_token`
    final_tokens: int  # tokens the final evaluation reads
    tokens_per_step: int  # B * T
    first: tuple[int, float] | None = None  # (step, elapsed) once the first step is over
    start_step: int | None = None  # the step this process started from

    def train_seconds_per_token(self, state: FitState) -> float | None:
        """Training seconds per token over the steps after this process's first, if any."""
        if self.start_step is None:
            self.start_step = state.step
        if self.first is None:
            if state.step > self.start_step:  # the first step (and its compiling) is over
                self.first = (state.step, state.elapsed)
            return None
        steps = state.step - self.first[0]
        if steps <= 0:
            return None
        return (state.elapsed - self.first[1]) / (steps * self.tokens_per_step)

    def __call__(self, state: FitState) -> float:
        return predict_eval_seconds(
            self.final_tokens, self.task.eval_seconds_per_token, self.train_seconds_per_token(state)
        )
