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

import json
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
    parse_conversation,
    read_conversations,
)
from gpt.chat.lora import LoRAConfig, apply_lora, lora_state_dict, new_token_layers
from gpt.data import tokenizer_reference
from gpt.model import GPT, GPTConfig, lm_loss
from gpt.runs import load_run_model, run_folder_of, saved_model_config
from gpt.train import TrainConfig, make_optimizer
from shared import sources
from shared.checkpoint import check_state, read_meta
from shared.config import config_to_dict, option
from shared.errors import UsageError
from shared.runs import find_checkpoint
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained, train_command
from shared.training import Decay, RunOptions, Setup, lr_factor
from tokenizers_fromscratch import Tokenizer, load_tokenizer

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
class FineTuneOptions(RunOptions):
    """What every command that starts from another run shares: `sft`, `dpo` and `rl`."""

    init: str | None = option(None, "the gpt run to start from: name or folder (default: the "
                              "latest)")  # fmt: skip
    max_length: int = option(
        128, "tokens per conversation; longer ones are left out (with a note)", ge=8
    )
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


@dataclass
class SFTConfig(FineTuneOptions):
    data: Path | None = option(
        None, "conversations, JSON Lines (`gpt make-chat-data` writes them), or a source whose "
        "rows hold them (jsonl:, parquet:, hf:ID[:CONFIG], ...)",
    )  # fmt: skip
    conversations_field: str = option(
        "conversations", "the field holding a row's messages, for a source (hub sets: messages)"
    )
    init: str | None = option(None, "the base gpt run: name or folder (default: the latest)")
    val_rows: int = option(200, "conversations held out of --data for the validation loss", ge=1)
    packing: bool = option(
        False, "pack conversations into --max_length windows instead of padding each batch"
    )
    batch_size: int = option(32, "conversations (or windows) per step", ge=1)


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
    gradient on the first `base_vocab` (old) rows is zeroed. (No new rows: nothing trains.)"""
    if base_vocab >= model.config.vocab_size:
        return
    for name in new_token_layers(model):
        weight = model.get_parameter(f"{name}.weight")
        weight.requires_grad_(True)
        weight.register_hook(lambda g: torch.cat([g[:base_vocab] * 0, g[base_vocab:]]))


def read_sft_data(cfg: SFTConfig) -> list[Conversation]:
    """The conversations of --data, refused before anything else runs if unusable."""
    if cfg.data is None:
        raise UsageError("--data is required: a JSON Lines file of conversations "
                         "(uv run --package gpt make-chat-data writes one)")  # fmt: skip
    if sources.is_source(str(cfg.data)):
        conversations = source_conversations(str(cfg.data), cfg.conversations_field)
    else:
        conversations = read_conversations(cfg.data)  # a bad line stops us before anything
    if len(conversations) <= cfg.val_rows:
        raise UsageError(f"{cfg.data} has {len(conversations)} conversations: too few for "
                         f"--val_rows {cfg.val_rows}")  # fmt: skip
    return conversations


def source_conversations(spec: str, field: str) -> list[Conversation]:
    """The train split's conversations of a source: each row's `field`, a list of messages."""
    rows = sources.load_source(spec, [field])["train"]
    return [parse_conversation(json.dumps({"conversations": turns}), f"{spec} row {i + 1}")
            for i, turns in enumerate(rows[field])]  # fmt: skip


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


def add_adapters(cfg: FineTuneOptions, model: GPT, base_vocab: int) -> tuple[LoRAConfig, list[str]]:
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


def sft_optimizer(cfg: FineTuneOptions, model: GPT) -> Any:
    """Full fine-tuning with Muon: the base run's own optimizer; else AdamW on what trains."""
    if not cfg.lora.rank and cfg.optimizer == "muon":
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


# ----------------------------------------------------------------------------------------------
# The run: what `gpt sft` declares to `shared.trainer`


@dataclass
class SFTRun:
    """The base run to start from, the chat tokenizer, and how a checkpoint holds the model:
    every weight, or (LoRA) only the adapters and the new tokens' rows. `dpo` and `rl` start
    from a run the same way (with no new tokens), so they use it too."""

    cfg: FineTuneOptions
    tok: Tokenizer
    base: Path  # the base run's checkpoint (pinned: --init's default is "the latest run")
    base_vocab: int  # the base model's vocabulary; the chat tokens come after it
    model_config: GPTConfig | None = None  # the grown model's, once `build_model` made it

    @property
    def lora(self) -> LoRAConfig | None:
        cfg = self.cfg.lora
        return LoRAConfig(cfg.rank, cfg.alpha, cfg.dropout, list(cfg.targets)) if cfg.rank else None

    def build_model(self) -> GPT:
        """The base run's model, grown to the chat vocabulary, with LoRA's adapters if asked."""
        model, _, _, _ = load_run_model(str(self.base), torch.device("cpu"))
        grow_vocabulary(model, self.tok.vocab_size, torch.Generator().manual_seed(self.cfg.seed))
        model.config.block_size = max(model.config.block_size, self.cfg.max_length)
        if self.lora is not None:
            _, wrapped = add_adapters(self.cfg, model, self.base_vocab)
            what = f"LoRA r={self.lora.rank} on {len(wrapped)} layers"
        else:
            what = f"full fine-tuning ({self.cfg.optimizer})"
        trains = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{what}: {trains:,} of {model.num_parameters():,} weights train", flush=True)
        self.model_config = model.config  # grown: what a checkpoint of this run records
        return model

    def checkpoint_meta(self) -> dict[str, Any]:
        """What `gpt.runs.load_run_model` needs: a LoRA run is its base plus these."""
        lora = self.lora
        model = asdict(self.model_config)
        return {
            "config": config_to_dict(self.cfg),
            "model": model,
            "tokenizer": tokenizer_reference(self.tok),
            "sft": {
                "init": str(self.base),
                "base_vocab_size": self.base_vocab,
                "vocab_size": self.tok.vocab_size,
                "lora": None if lora is None else asdict(lora),
            },  # fmt: skip
        }

    def saved_weights(self, model: GPT) -> dict[str, Tensor]:
        if self.lora is None:
            return model.state_dict()
        # the adapters and the new tokens' rows: a few percent of the model
        return {**lora_state_dict(model),
                **{f"{name}.new_rows": model.get_parameter(f"{name}.weight")[self.base_vocab :]
                   .detach() for name in new_token_layers(model)}}  # fmt: skip

    def load_saved_weights(self, model: GPT, saved: dict[str, Tensor]) -> None:
        """`saved_weights`' inverse, for --resume (the base's weights are loaded already)."""
        if self.lora is None:
            expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            check_state(saved, expected, "the resumed checkpoint")
            model.load_state_dict(saved)
            return
        with torch.no_grad():
            for name in new_token_layers(model):
                weight = model.get_parameter(f"{name}.weight")
                weight[self.base_vocab :] = saved.pop(f"{name}.new_rows").to(weight)
        check_state(saved, {k: tuple(v.shape) for k, v in lora_state_dict(model).items()},
                    "the resumed checkpoint's adapters")  # fmt: skip
        model.load_state_dict(saved, strict=False)

    def write_run_files(self, folder: Path) -> None:
        self.tok.save(folder / "tokenizer")

    def schedule(self, step: int, elapsed: float, seconds: float | None) -> float:
        cfg = self.cfg
        return lr_factor(step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
                         seconds=seconds, decay=cfg.decay, min_ratio=cfg.min_lr_ratio)  # fmt: skip

    def plot_title(self, trained: Trained) -> str:
        return "SFT: loss on the assistant's tokens"


def sft_tokenizer(
    cfg: SFTConfig, conversations: list[Conversation], base: Path, resume: Resume | None
) -> Tokenizer:
    """The chat tokenizer: the base's grown by the chat tokens and the data's new characters,
    or, resuming, the run's own."""
    if resume is not None:
        return load_tokenizer(resume.run_folder / "tokenizer")
    return chat_tokenizer(load_tokenizer(run_folder_of(base) / "tokenizer"), conversations)


def prepare(cfg: SFTConfig, env: Setup | None = None, resume: Resume | None = None) -> TrainingTask:
    """`gpt sft`'s task: the conversations, the base run, the chat tokenizer, the model's
    recipe (built by the trainer, after it seeds), how a checkpoint holds it."""
    conversations = read_sft_data(cfg)
    base = Path(resume.meta["sft"]["init"]) if resume else find_checkpoint(STAGE, cfg.init)
    base_meta = read_meta(base)
    base_model = saved_model_config(base_meta)
    if base_model.get("pos") == "learned" and cfg.max_length > base_model["block_size"]:
        raise UsageError(f"the base run's model has learned positions for "
                         f"{base_model['block_size']} tokens; lower --max_length to that "
                         "(a RoPE model can be fine-tuned on longer conversations)")  # fmt: skip
    tok = sft_tokenizer(cfg, conversations, base, resume)
    base_vocab = base_model["vocab_size"]
    train, val, dropped = split_conversations(cfg, tok, conversations)
    job = SFTRun(cfg, tok, base, base_vocab)
    task = SFTTask(train, val, tok.token_to_id("<|end|>"), cfg.batch_size, cfg.max_length,
                   cfg.packing)  # fmt: skip
    added = ", ".join(tok.added_special + tok.added_chars) if hasattr(tok, "added_special") else ""
    left_out = f" ({dropped} longer than {cfg.max_length} tokens left out)" if dropped else ""
    return TrainingTask(
        stage=STAGE,
        config=cfg,
        task=task,
        build_model=job.build_model,
        build_optimizer=lambda model: sft_optimizer(cfg, model),
        schedule=job.schedule,
        checkpoint_meta=job.checkpoint_meta,
        write_run_files=job.write_run_files,
        shard_units=lambda model: list(model.blocks),
        grad_clip=cfg.grad_clip,
        item_name="tok",
        description=(
            f"base {base} (vocabulary {base_vocab} -> {tok.vocab_size}: {added} added); "
            f"{len(train):,} training conversations, {len(val):,} held out{left_out}"
        ),
        evaluate_at_end=True,
        resume_command="uv run --package gpt sft",
        plots={"loss.png": ["loss", "val_loss"]},
        plot_title=job.plot_title,
        saved_weights=job.saved_weights,
        load_saved_weights=job.load_saved_weights,
    )


def sft(argv: list[str]) -> None:
    """Fine-tune a base run: `prepare` declares the task, `shared.trainer` runs it."""
    train_command(STAGE, SFTConfig, argv, prepare, prog="gpt sft",
                  description=__doc__.split("\n\n")[0])  # fmt: skip


def is_lora_run(meta: dict[str, Any]) -> bool:
    return bool(meta.get("sft", {}).get("lora"))
