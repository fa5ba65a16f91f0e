"""The transformer stage's tasks for `training_kit`: the SST-2 classifier (`--task
transformer_sst2`) and the Multi30k translator (`--task transformer_translate`).

`training_task(argv)` reads `transformer train`'s own options (`--epochs`, `--batch_size`,
`--model.d_model`, ...), builds the vocabulary, the held-out selection slice, the datasets and
`SentimentTask` exactly as `train` does, and hands them over with the same AdamW groups and
the same step-based schedule. Its budget is in epochs, so it gives the kit its step count and
evaluates at each epoch's end, as `train` does. What `train` adds on top (keeping the epoch the
selection slice picks, the error report) stays in the stage's own command.
"""

from pathlib import Path
from typing import Any

import torch

from shared.config import config_to_dict, parse_config
from shared.errors import UsageError
from shared.tasks import TrainingTask
from transformer.classify import ClassifyConfig, SentimentTask, build_model, load_sentences
from transformer.loop import held_out, make_optimizer, steps_per_epoch
from transformer.schedule import lr_factor
from transformer.sst2 import SentimentDataset, build_vocab
from transformer.translate_task import TranslationConfig, TranslationTask, build_vocabs, load_pairs
from transformer.translate_task import build_model as build_translator


def training_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    cfg = parse_config(ClassifyConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `transformer train`; training_kit has its own")
    splits = load_sentences(cfg)
    sentences, labels = splits["train"]
    fit_rows, select_rows = held_out(len(sentences), cfg.select_fraction, cfg.seed)
    train_part = ([sentences[i] for i in fit_rows], [labels[i] for i in fit_rows])
    vocab = build_vocab(train_part[0], cfg.min_freq)
    train = SentimentDataset(*train_part, vocab, cfg.model.max_len)
    dev = SentimentDataset(*splits["dev"], vocab, cfg.model.max_len)
    select = None
    if select_rows:
        held = ([sentences[i] for i in select_rows], [labels[i] for i in select_rows])
        select = SentimentDataset(*held, vocab, cfg.model.max_len)
    task = SentimentTask(cfg, train, dev, select)
    per_epoch = steps_per_epoch(task.sampler.batches_per_epoch, cfg.accumulate)
    total = cfg.max_steps or cfg.epochs * per_epoch
    warmup = cfg.warmup_steps(total)

    def checkpoint_meta() -> dict[str, Any]:
        return {"config": config_to_dict(cfg), "vocab_size": len(vocab)}

    def write_run_files(folder: Path) -> None:
        vocab.save(folder / "vocab.json")  # where `transformer eval` looks for it

    def shard_units(model: torch.nn.Module) -> list[torch.nn.Module]:
        return list(model.encoder.layers)  # one FSDP unit per encoder layer

    return TrainingTask(
        stage="transformer",
        config=cfg,
        task=task,
        build_model=lambda: build_model(cfg, vocab),
        build_optimizer=lambda model: make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.beta2),
        schedule=lambda step, elapsed, seconds: lr_factor(
            step, warmup, total, cfg.schedule, cfg.min_lr_ratio
        ),  # by steps, as `transformer train`'s
        checkpoint_meta=checkpoint_meta,
        write_run_files=write_run_files,
        shard_units=shard_units,
        grad_clip=cfg.grad_clip,
        max_steps=total,
        eval_interval=cfg.eval_interval or per_epoch,
        item_name="ex",
        description=(
            f"transformer on SST-2: {len(train):,} training sentences, {len(dev):,} dev, "
            f"{len(vocab):,} words; {total} steps ({per_epoch} an epoch)"
        ),
    )


def translation_task(argv: list[str], prog: str = "training_kit train") -> TrainingTask:
    """`transformer train --task translation`'s task: Multi30k de->en (or your pair files), the
    vocabularies built from the training pairs, greedy validation BLEU in its evaluation."""
    cfg = parse_config(TranslationConfig, argv, prog=prog)
    if cfg.resume:
        raise UsageError("--resume belongs to `transformer train`; training_kit has its own")
    data = load_pairs(cfg)
    fit_rows, select_rows = held_out(len(data["train"]), cfg.select_fraction, cfg.seed)
    select = [data["train"][i] for i in select_rows]
    data = {**data, "train": [data["train"][i] for i in fit_rows]}
    src, tgt = build_vocabs(data["train"], cfg.min_freq, cfg.model.share_embeddings)
    task = TranslationTask(cfg, data, src, tgt, select)
    per_epoch = steps_per_epoch(task.sampler.batches_per_epoch, cfg.accumulate)
    total = cfg.max_steps or cfg.epochs * per_epoch
    warmup = cfg.warmup_steps(total)

    def write_run_files(folder: Path) -> None:
        src.save(folder / "src_vocab.json")  # where `transformer translate` looks for them
        tgt.save(folder / "tgt_vocab.json")

    return TrainingTask(
        stage="transformer",
        config=cfg,
        task=task,
        build_model=lambda: build_translator(cfg, src, tgt),
        build_optimizer=lambda model: make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.beta2),
        schedule=lambda step, elapsed, seconds: lr_factor(
            step, warmup, total, cfg.schedule, cfg.min_lr_ratio
        ),
        checkpoint_meta=lambda: {"config": config_to_dict(cfg)},
        write_run_files=write_run_files,
        shard_units=lambda model: [
            *model.transformer.encoder.layers,
            *model.transformer.decoder.layers,
        ],  # fmt: skip
        grad_clip=cfg.grad_clip,
        max_steps=total,
        eval_interval=cfg.eval_interval or per_epoch,
        item_name="tok",
        description=(
            f"transformer translator: {len(task.train):,} training pairs, vocabularies "
            f"{len(src):,} / {len(tgt):,}; {total} steps ({per_epoch} an epoch)"
        ),
    )
