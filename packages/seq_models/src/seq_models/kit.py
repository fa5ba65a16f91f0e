"""The seq_models stage's task for `training_kit`: the char LSTM with its carried state.

`seq_models train` reads the text as B contiguous streams and carries each stream's LSTM state
from one window to the next (truncated backpropagation through time). That state is why this
task cannot be dealt out batch by batch like gpt's random windows: window k+1 of a stream must
follow window k *in the same process*. So the kit splits the streams instead: of B streams,
process r of N reads streams r*B/N ... (r+1)*B/N - 1, every window, and carries their state.

    one process, B = 4 streams            two processes, 2 streams each
    stream 0  |w0|w1|w2|...               rank 0: stream 0, stream 1  |w0|w1|w2|...
    stream 1  |w0|w1|w2|...               rank 1: stream 2, stream 3  |w0|w1|w2|...
    stream 2  |w0|w1|w2|...
    stream 3  |w0|w1|w2|...

The LSTM treats the streams independently, and the kit weights each process's mean loss by
its share of the characters, so DDP on N processes takes the steps of one process reading all
B streams (tested). Checkpoints are this stage's: `seq_models sample --run RUN` reads them.
"""

from typing import Any

import torch
from torch import Tensor

from seq_models.charlm import CharLM, CharVocab, detach_state, lm_loss, streams
from seq_models.charlm import evaluate as evaluate_loss
from seq_models.cli import TrainConfig, learning_rate, load_text
from shared.config import config_to_dict, parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask


class StreamPosition:
    """Where the streams are: the epoch, its window offset, the next window, and the state each
    of this process's streams carries into it. A checkpoint keeps it, so a resumed run reads
    the next window with the right state."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size
        self.epoch, self.offset, self.window = 0, 0, 0
        self.carry: tuple[Tensor, Tensor] | None = None  # (h, c): (layers, B / N, H) each

    def state_dict(self) -> dict[str, Any]:
        carry = None if self.carry is None else [t.tolist() for t in self.carry]
        return {"epoch": self.epoch, "offset": self.offset, "window": self.window,
                "carry": carry}  # fmt: skip

    @staticmethod
    def merge_process_states(states: list[dict[str, Any]]) -> dict[str, Any]:
        """Every process's position in one: the same window everywhere, the carried states of
        all B streams side by side (rank order), as one process reading them all would hold."""
        merged = dict(states[0])
        if merged["carry"] is not None:
            merged["carry"] = [
                torch.cat([torch.tensor(s["carry"][i]) for s in states], dim=1).tolist()
                for i in (0, 1)
            ]  # (layers, B, H) each
        return merged

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from a merged position (saved under any number of processes)."""
        self.epoch, self.offset, self.window = saved["epoch"], saved["offset"], saved["window"]
        self.carry = None
        if saved["carry"] is not None:
            h, c = (torch.tensor(t) for t in saved["carry"])  # (layers, B, H)
            share = h.shape[1] // self.world_size
            mine = slice(self.rank * share, (self.rank + 1) * share)
            self.carry = (h[:, mine].contiguous(), c[:, mine].contiguous())


class CharStreamTask:
    """The char LM as `shared.fit.Task`, for one process's share of the streams."""

    def __init__(self, cfg: TrainConfig, train_ids: Tensor, val_ids: Tensor, rank: int = 0,
                 world_size: int = 1) -> None:  # fmt: skip
        if cfg.batch_size % world_size:
            raise UsageError(
                f"--batch_size {cfg.batch_size} streams do not split evenly over {world_size} "
                "processes; make it a multiple of --num_processes"
            )
        self.cfg, self.train_ids, self.val_ids = cfg, train_ids, val_ids
        self.streams = slice(rank * cfg.batch_size // world_size,
                             (rank + 1) * cfg.batch_size // world_size)  # fmt: skip
        self.sampler = StreamPosition(rank, world_size)

    def train_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The next window of this process's streams, (B / N, T) each: `tbptt_batches`' windows
        one at a time. At an epoch's end the next epoch's offset is drawn from `generator`
        (the same draw on every process, whose generators are seeded alike)."""
        pos, T = self.sampler, self.cfg.seq_len
        x, y = streams(self.train_ids, self.cfg.batch_size, pos.offset)  # (B, n) each: views
        if pos.window * T >= x.shape[1]:  # the epoch is done: new window edges, no state
            pos.epoch, pos.window, pos.carry = pos.epoch + 1, 0, None
            pos.offset = int(torch.randint(T, (1,), generator=generator))
            x, y = streams(self.train_ids, self.cfg.batch_size, pos.offset)
        cut = slice(pos.window * T, (pos.window + 1) * T)
        pos.window += 1
        return x[self.streams, cut], y[self.streams, cut]  # (B / N, T) each

    def count(self, batch: tuple[Tensor, Tensor]) -> int:
        return batch[1].numel()

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        carry = self.sampler.carry
        if carry is not None:
            carry = (carry[0].to(x.device), carry[1].to(x.device))
        logits, state = model(x, carry)  # (B / N, T, V)
        self.sampler.carry = detach_state(state)  # the values carry on, the gradients stop
        return lm_loss(logits, y)

    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        val = evaluate_loss(model, self.val_ids, self.cfg.batch_size, self.cfg.seq_len,
                            self.cfg.eval_iters, precision_ctx)  # fmt: skip
        return {"val_loss": val}


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`seq_models train`'s task from its own options (`--model.hidden_size=128
    --batch_size=32 --seq_len=64 ...`); `--resume` and the final sample belong to that command."""
    cfg = parse_config(TrainConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError(
            "--resume belongs to `seq_models train`; training_kit has its own --resume"
        )
    splits, dataset, note = load_text(cfg.dataset)
    cfg.dataset = dataset
    vocab = CharVocab.from_text(splits["train"] + splits["val"])
    train_ids, val_ids = vocab.encode(splits["train"]), vocab.encode(splits["val"])
    task = CharStreamTask(cfg, train_ids, val_ids)

    def for_process(rank: int, world_size: int) -> CharStreamTask:
        return CharStreamTask(cfg, train_ids, val_ids, rank, world_size)

    def build_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        for group in opt.param_groups:
            group["peak_lr"] = cfg.lr
        return opt

    def checkpoint_meta() -> dict[str, Any]:
        return {"config": config_to_dict(cfg), "model": config_to_dict(cfg.model),
                "vocab": vocab.chars, "dataset": dataset}  # fmt: skip

    description = (
        f"char LSTM on {dataset}: {len(train_ids):,} train characters, vocabulary {len(vocab)}; "
        f"{cfg.model.num_layers} layers x {cfg.model.hidden_size}, {cfg.batch_size} streams "
        f"of {cfg.seq_len}"
    )
    return TrainingTask(
        stage="seq_models",
        config=cfg,
        task=task,
        build_model=lambda: CharLM(len(vocab), cfg.model),
        build_optimizer=build_optimizer,
        schedule=lambda step, elapsed, seconds: learning_rate(cfg, step, elapsed) / cfg.lr,
        checkpoint_meta=checkpoint_meta,
        write_run_files=lambda folder: None,  # the vocabulary travels in the checkpoint's meta
        shard_units=lambda model: [],  # one FSDP unit: the LSTM's weights are few and small
        grad_clip=cfg.grad_clip,
        for_process=for_process,
        item_name="char",
        description=description + (f" ({note})" if note else ""),
    )
