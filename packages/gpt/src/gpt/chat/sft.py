"""`gpt sft`: supervised fine-tuning of a base run on conversations, in full or with LoRA.

    uv run --package gpt sft --data sft.jsonl --init BASE_RUN                  # every weight
    uv run --package gpt sft --data sft.jsonl --init BASE_RUN --lora.rank 8    # adapters only

    base run -> its model and tokenizer
      + the chat tokens (and the characters the data has and the tokenizer lacks) -> new ids
      + new embedding rows for them (gpt.chat.format.grow_vocabulary; the old rows unchanged)
    conversations -> template ids, the assistant's tokens marked (gpt.chat.format)
    shared.fit: batches of conversations padded to the longest (or packed into windows),
                cross entropy on the marked tokens only, AdamW, warmup then cosine decay
    <run>/checkpoints/final, <run>/tokenizer: `gpt sample`, `gpt chat`, `gpt chat-eval` read it

With LoRA only the adapters train, and the new tokens' embedding rows: a chat token that kept
its starting row (the mean of the old ones, for every new token alike) could not tell the
model which role speaks. Where the base's output layer is not tied to the embedding (the
default since issue #19), its new rows train too: without them no new token could ever be
predicted. A LoRA run saves just those tensors; loading it loads the base run, grows it, adds
the adapters and merges them.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from gpt.chat.format import (
    Conversation,
    chat_tokenizer,
    encode_conversation,
    grow_vocabulary,
    masked_targets,
    read_conversations,
)
from gpt.chat.lora import LoRAConfig, apply_lora, lora_state_dict, new_token_layers
from gpt.data import tokenizer_reference
from gpt.model import GPT, lm_loss
from gpt.runs import load_run_model
from gpt.train import TrainConfig, make_optimizer
from shared.checkpoint import save_checkpoint
from shared.config import config_to_dict, option, parse_config
from shared.errors import UsageError
from shared.fit import FitSettings, FitState, fit
from shared.runs import Run
from shared.training import Decay, RunOptions, StopSignals, lr_factor, setup
from tokenizers_fromscratch import Tokenizer

STAGE = "gpt"


@dataclass
class LoRAOptions:
    rank: int = option(0, "LoRA rank r (0: full fine-tuning of every weight)", ge=0)
    alpha: float = option(16.0, "LoRA alpha: the update is scaled by alpha / r", gt=0)
    dropout: float = option(0.0, "dropout on the adapters' input", ge=0, lt=1)
    targets: list[str] = option(
        LoRAConfig().targets, "linear layers that get adapters (end of the module's name)"
    )


@dataclass
class SFTConfig(RunOptions):
    data: Path | None = option(None, "conversations, JSON Lines (`gpt make-chat-data` writes them)")
    init: str | None = option(None, "the base gpt run: name or folder (default: the latest)")
    val_rows: int = option(200, "conversations held out of --data for the validation loss", ge=1)
    max_length: int = option(
        128, "tokens per conversation; longer ones are left out (with a note)", ge=8
    )
    packing: bool = option(
        False, "pack conversations into --max_length windows instead of padding each batch"
    )
    batch_size: int = option(32, "conversations (or windows) per step", ge=1)
    optimizer: Literal["adamw", "muon"] = option(
        "adamw",
        "adamw: AdamW for every weight; muon: Muon for the blocks' matrices and AdamW for the "
        "rest, as `gpt train` (LoRA always uses AdamW)",
    )
    lr: float = option(1e-3, "AdamW's peak learning rate", gt=0)
    muon_lr: float = option(0.01, "Muon's peak learning rate", gt=0)
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay", ge=0)
    warmup_steps: int = option(50, "linear warmup steps", ge=0)
    decay: Decay = option("cosine", "how the rate falls after warmup")
    min_lr_ratio: float = option(0.1, "the rate's floor, as a fraction of the peak", ge=0, le=1)
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", ge=0)
    lora: LoRAOptions = field(default_factory=LoRAOptions)
    time_limit: float = option(600.0, "seconds of training, final evaluation included (0: none)",
                               ge=0)  # fmt: skip
    eval_interval: int = option(250, "evaluate every N steps", ge=1)


# ----------------------------------------------------------------------------------------------
# The task


Example = tuple[list[int], list[bool]]  # template ids, and which of them are targets


def pad_batch(examples: list[Example], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded inputs x and masked targets y, (B, L - 1) each, L the longest example.
    Padding sits after each conversation, so causal attention never lets it touch a real
    token; its targets are -100."""
    L = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), L), pad_id, dtype=torch.long)  # (B, L)
    trained = torch.zeros((len(examples), L), dtype=torch.bool)  # (B, L)
    for row, (i, t) in enumerate(examples):
        ids[row, : len(i)] = torch.tensor(i)
        trained[row, : len(t)] = torch.tensor(t)
    return ids[:, :-1], masked_targets(ids, trained)


class SFTTask:
    """Conversations for `shared.fit`: random batches, the loss on the assistant's tokens."""

    def __init__(self, train: list[Example], val: list[Example], pad_id: int, batch_size: int,
                 max_length: int, packing: bool) -> None:  # fmt: skip
        self.train, self.val, self.pad_id = train, val, pad_id
        self.batch_size, self.max_length, self.packing = batch_size, max_length, packing
        if packing:  # one stream of every conversation, end to end: no padding at all
            self.stream = torch.tensor([i for ids, _ in train for i in ids])  # (N,)
            self.stream_trained = torch.tensor([t for _, tr in train for t in tr])  # (N,)

    def train_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if not self.packing:
            rows = torch.randint(len(self.train), (self.batch_size,), generator=generator)
            return pad_batch([self.train[i] for i in rows.tolist()], self.pad_id)
        L = self.max_length + 1
        starts = torch.randint(len(self.stream) - L, (self.batch_size,), generator=generator)
        ids = torch.stack([self.stream[s : s + L] for s in starts.tolist()])  # (B, L)
        trained = torch.stack([self.stream_trained[s : s + L] for s in starts.tolist()])
        return ids[:, :-1], masked_targets(ids, trained)

    def count(self, batch: tuple[Tensor, Tensor]) -> int:
        return int((batch[1] != -100).sum())  # the assistant tokens the loss averages over

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch  # (B, T) each
        return lm_loss(model(x), y)  # mean over the targets that are not -100

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for start in range(0, len(self.val), 64):
            x, y = pad_batch(self.val[start : start + 64], self.pad_id)
            x, y = x.to(device), y.to(device)
            with precision_ctx():
                n = int((y != -100).sum())
                total += self.loss(model, (x, y)).item() * n
            count += n
        model.train(was_training)
        return {"val_loss": total / max(count, 1)}


# ----------------------------------------------------------------------------------------------
# Preparing: the base model grown, the data encoded


def encode_all(tok: Tokenizer, conversations: list[Conversation],
               max_length: int) -> tuple[list[Example], int]:  # fmt: skip
    """Every conversation that fits in `max_length` + 1 tokens, and how many did not."""
    examples, dropped = [], 0
    for conversation in conversations:
        ids, trained = encode_conversation(tok, conversation)
        if len(ids) > max_length + 1:
            dropped += 1
        else:
            examples.append((ids, trained))
    return examples, dropped


def train_new_token_rows(model: GPT, base_vocab: int) -> None:
    """Let the new tokens' rows of `new_token_layers` train while the rest stays frozen: their
    gradient on the first `base_vocab` (old) rows is zeroed."""
    for name in new_token_layers(model):
        weight = model.get_parameter(f"{name}.weight")
        weight.requires_grad_(True)
        weight.register_hook(lambda g: torch.cat([g[:base_vocab] * 0, g[base_vocab:]]))


def read_sft_data(cfg: SFTConfig) -> list[Conversation]:
    """The conversations of --data, refused before anything else runs if unusable."""
    if cfg.resume:
        raise UsageError("gpt sft cannot --resume yet; start it again (a run takes minutes)")
    if cfg.data is None:
        raise UsageError("--data is required: a JSON Lines file of conversations "
                         "(uv run --package gpt make-chat-data writes one)")  # fmt: skip
    conversations = read_conversations(cfg.data)  # a bad line stops us before anything
    if len(conversations) <= cfg.val_rows:
        raise UsageError(f"{cfg.data} has {len(conversations)} conversations: too few for "
                         f"--val_rows {cfg.val_rows}")  # fmt: skip
    return conversations


def split_conversations(
    cfg: SFTConfig, tok: Tokenizer, conversations: list[Conversation]
) -> tuple[list[Example], list[Example], int]:
    """(training examples, held-out examples, how many were too long), shuffled by the seed."""
    order = torch.randperm(len(conversations), generator=torch.Generator().manual_seed(cfg.seed))
    shuffled = [conversations[i] for i in order.tolist()]
    val, dropped_val = encode_all(tok, shuffled[: cfg.val_rows], cfg.max_length)
    train, dropped = encode_all(tok, shuffled[cfg.val_rows :], cfg.max_length)
    if not train:
        raise UsageError(f"no conversation fits in --max_length {cfg.max_length} tokens")
    return train, val, dropped + dropped_val


def add_adapters(cfg: SFTConfig, model: GPT, base_vocab: int) -> tuple[LoRAConfig, list[str]]:
    """LoRA on --lora.targets, plus the new tokens' rows: (its config, the wrapped layers)."""
    lora = LoRAConfig(cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, list(cfg.lora.targets))
    try:
        wrapped = apply_lora(model, lora)
    except ValueError as error:
        raise UsageError(f"--lora.targets: {error}") from None
    if "lm_head" in wrapped:
        raise UsageError("--lora.targets: leave lm_head out; its new tokens' rows train in "
                         "full, and its old rows are the base's")  # fmt: skip
    # The new tokens' rows train too: in the embedding, and in an untied output layer,
    # without which they could never be predicted.
    train_new_token_rows(model, base_vocab)
    return lora, wrapped


def sft_optimizer(cfg: SFTConfig, model: GPT, lora: LoRAConfig | None) -> Any:
    """Full fine-tuning with Muon: the base run's own optimizer; else AdamW on what trains."""
    if lora is None and cfg.optimizer == "muon":
        base_cfg = TrainConfig(optimizer="muon", lr=cfg.lr, muon_lr=cfg.muon_lr,
                               muon_momentum=0.95,  # as docs/chat.md's SFT rows were measured
                               weight_decay=cfg.weight_decay)  # fmt: skip
        return make_optimizer(model, base_cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.99))  # fmt: skip
    for group in optimizer.param_groups:
        group["peak_lr"] = cfg.lr
    return optimizer


@dataclass
class SFTCheckpoints:
    """`save(state, name)` for fit: the whole model, or (LoRA) only what trained."""

    cfg: SFTConfig
    run: Run
    model: GPT
    tok: Tokenizer
    base_folder: Path
    base_vocab: int
    lora: LoRAConfig | None

    def __call__(self, state: FitState, name: str | None = None) -> Path:
        model, base_vocab = self.model, self.base_vocab
        meta = {
            "config": config_to_dict(self.cfg),
            "model": asdict(model.config),
            "tokenizer": tokenizer_reference(self.tok),
            "step": state.step,
            "elapsed": state.elapsed,
            "sft": {
                "init": str(self.base_folder),
                "base_vocab_size": base_vocab,
                "vocab_size": self.tok.vocab_size,
                "lora": None if self.lora is None else asdict(self.lora),
            },  # fmt: skip
        }
        if self.lora is None:
            weights = model.state_dict()
        else:  # the adapters and the new tokens' rows: a few percent of the model
            weights = {**lora_state_dict(model),
                       **{f"{name}.new_rows": model.get_parameter(f"{name}.weight")[base_vocab:]
                          .detach() for name in new_token_layers(model)}}  # fmt: skip
        return save_checkpoint(self.run.checkpoints / (name or f"step_{state.step:06d}"),
                               weights, None, meta)  # fmt: skip


def run_sft(cfg: SFTConfig) -> Path:
    conversations = read_sft_data(cfg)
    env = setup(cfg)
    device = env.device
    model, base_tok, base_meta, base_folder = load_run_model(cfg.init, device)
    if model.config.pos == "learned" and cfg.max_length > model.config.block_size:
        raise UsageError(f"the base run's model has learned positions for "
                         f"{model.config.block_size} tokens; lower --max_length to that "
                         "(a RoPE model can be fine-tuned on longer conversations)")  # fmt: skip
    tok = chat_tokenizer(base_tok, conversations)
    base_vocab = model.config.vocab_size
    grow_vocabulary(model, tok.vocab_size, torch.Generator().manual_seed(cfg.seed))
    model.config.block_size = max(model.config.block_size, cfg.max_length)
    model.to(device)
    train, val, dropped = split_conversations(cfg, tok, conversations)
    lora, wrapped = add_adapters(cfg, model, base_vocab) if cfg.lora.rank else (None, [])
    optimizer = sft_optimizer(cfg, model, lora)
    task = SFTTask(train, val, tok.token_to_id("<|end|>"), cfg.batch_size, cfg.max_length,
                   cfg.packing)  # fmt: skip

    run = Run.start(STAGE, cfg, name=cfg.run_name)
    tok.save(run.folder / "tokenizer")
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"base {base_folder} (vocabulary {base_vocab} -> {tok.vocab_size}: "
          f"{', '.join(tok.added_special + tok.added_chars)} added)", flush=True)  # fmt: skip
    what = (f"LoRA r={lora.rank} on {len(wrapped)} layers" if lora
            else f"full fine-tuning ({cfg.optimizer})")  # fmt: skip
    print(f"{len(train):,} training conversations, {len(val):,} held out"
          + (f" ({dropped} longer than {cfg.max_length} tokens left out)" if dropped else "")
          + f"; {what}: {n_train:,} of {model.num_parameters():,} weights train; "
          f"{env.precision_note} on {device}, {env.threads_note}", flush=True)  # fmt: skip

    save = SFTCheckpoints(cfg, run, model, tok, base_folder, base_vocab, lora)
    settings = FitSettings(
        schedule=lambda step, elapsed, seconds: lr_factor(
            step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
            seconds=seconds, decay=cfg.decay, min_ratio=cfg.min_lr_ratio),
        grad_clip=cfg.grad_clip, item_name="tok", evaluate_at_end=True,
    )  # fmt: skip
    state = FitState(generator=torch.Generator().manual_seed(cfg.seed))
    started = time.perf_counter()
    with StopSignals() as stop:
        fit(task, model, optimizer, cfg, settings, run, state, device, env.precision,
            save=save, stop=stop)  # fmt: skip
        final = save(state, "interrupted" if stop.requested else "final")
    run.plot_metrics("loss.png", ["loss", "val_loss"], title="SFT: loss on the assistant's tokens")
    print(f"after {state.step} steps ({time.perf_counter() - started:.0f}s): saved {final}")
    if stop.requested:
        raise SystemExit(stop.exit_code)
    run.finish({"checkpoint": final})
    return run.folder


def sft(argv: list[str]) -> None:
    run_sft(parse_config(SFTConfig, argv, prog="gpt sft", description=__doc__.split("\n\n")[0]))


def is_lora_run(meta: dict[str, Any]) -> bool:
    return bool(meta.get("sft", {}).get("lora"))
