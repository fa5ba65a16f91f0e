"""The translation task and its training loop, on sentence pairs held in memory.

The task (loss, translation, BLEU) is separate from the loop, and the loop takes plain
`(German, English)` string pairs, so the same code trains on Multi30k (cli.py loads it) or on a
few synthetic pairs in a test. The data half (vocabularies, ids, batches) is translation_data.py,
shared with the transformer stage.

One epoch: shuffle the training pairs, sort them by length within chunks of 50 batches (so a
batch holds sentences of similar length and little padding), and take Adam steps on the mean
cross-entropy per target word, with gradient clipping, label smoothing and a cosine learning-rate
decay. After each epoch: validation loss, greedy BLEU on a slice of the validation set, and a
checkpoint. At the end: BLEU of beam search on the test pairs and a heatmap of the attention.
"""

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from attention.bleu import corpus_bleu
from attention.decode import Hypothesis, beam_search_batch, greedy_decode
from attention.heatmap import plot_attention
from attention.seq2seq import Seq2Seq, Seq2SeqConfig
from attention.translation_data import Example, Pair, batches, build_vocabs, encode_pairs, pad
from attention.vocab import PAD, Vocab, detokenize, tokenize
from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.config import config_from_dict, config_to_dict, option
from shared.device import (
    autocast,
    describe_precision,
    pick_device,
    pick_threads,
    resolve_precision,
)
from shared.errors import CheckpointError, UsageError
from shared.runs import Run
from shared.seeding import seed_everything
from shared.training import StopSignals, lr_factor

EXAMPLE_SENTENCE = "Ein Mann fährt Fahrrad."


@dataclass
class TrainConfig:
    epochs: int = option(6, "passes over the training pairs", ge=1)
    batch_size: int = option(64, "sentence pairs per step", ge=1)
    lr: float = option(3e-3, "peak Adam learning rate (cosine decay to lr/20 over the run)", gt=0)
    grad_clip: float = option(1.0, "clip the gradient's global norm to this", gt=0)
    label_smoothing: float = option(
        0.1, "spread this much target probability over all words", ge=0, lt=1
    )
    min_freq: int = option(2, "keep words seen at least this often in training; others <unk>", ge=1)
    max_len: int = option(50, "drop training pairs with more words than this on either side", ge=1)
    beam_size: int = option(5, "beam width for the final test BLEU (1: greedy)", ge=1)
    alpha: float = option(0.6, "beam search length penalty exponent (0: none)")
    val_bleu_sentences: int = option(
        300, "validation sentences translated for BLEU each epoch", ge=0
    )
    time_limit: float = option(
        0.0, "stop training after this many seconds (0: none); the lr decays on time too", ge=0
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    precision: Literal["auto", "fp32", "bf16"] = option(
        "fp32", "auto: bf16 where the CPU or GPU has it natively (slower here: see the README)"
    )
    threads: int = option(0, "torch CPU threads (0: as many as there are idle cores)", ge=0)
    seed: int = option(0, "random seed for data order, dropout and weights")
    run_name: str | None = option(None, "name of the run folder (default: the start time)")
    model: Seq2SeqConfig = option(Seq2SeqConfig, "the network")


# ----------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate_loss(
    model: Seq2Seq, examples: Sequence[Example], batch_size: int, device: torch.device, ctx: Any
) -> float:
    """Mean cross-entropy per target word (no label smoothing), in eval mode."""
    was_training = model.training
    model.eval()
    total, words = 0.0, 0
    for src, tgt in batches(examples, batch_size, device=device):
        n = int((tgt != PAD).sum())
        with ctx:
            total += float(model.loss(src, tgt)) * n
        words += n
    model.train(was_training)
    return total / max(words, 1)


@dataclass
class Translation:
    source: list[str]  # source words as the model saw them
    output: list[str]  # output words, without <eos>
    text: str  # the detokenized output
    weights: torch.Tensor  # (len(labels), len(source)): one row per generated token
    labels: list[str]  # the generated tokens, <eos> included: the heatmap's row labels


@torch.no_grad()
def translate_sentences(
    model: Seq2Seq,
    sentences: Sequence[str],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    beam_size: int = 1,
    alpha: float = 0.6,
    device: torch.device | None = None,
    batch_size: int = 100,
    ctx: Any = None,
) -> list[Translation]:
    """Translate German sentences in batches: greedy decoding for beam 1, else beam search."""
    import contextlib

    ctx = ctx if ctx is not None else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    tokens = [tokenize(s) or ["<unk>"] for s in sentences]
    ids = [src_vocab.encode(t, eos=False) for t in tokens]
    hyps: list[Hypothesis | None] = [None] * len(ids)
    with ctx:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together
        for start in range(0, len(order), batch_size):
            group = order[start : start + batch_size]
            if beam_size == 1:
                decoded = greedy_decode(model, pad([ids[i] for i in group], device))
            else:  # the beams of all sentences of the group are rows of one batch
                sources = [ids[i] for i in group]
                decoded = beam_search_batch(model, sources, beam_size, alpha, device=device)
            for i, hyp in zip(group, decoded, strict=True):
                hyps[i] = hyp
    model.train(was_training)
    out = []
    for toks, hyp in zip(tokens, hyps, strict=True):
        assert hyp is not None
        words = tgt_vocab.decode(hyp.ids)
        labels = [tgt_vocab.tokens[i] for i in hyp.ids]
        out.append(Translation(toks, words, detokenize(words), hyp.weights, labels))
    return out


def bleu_on(
    model: Seq2Seq,
    pairs: Sequence[Pair],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    beam_size: int,
    alpha: float,
    device: torch.device,
    ctx: Any = None,
) -> tuple[float, list[str]]:
    """Corpus BLEU of our translations of `pairs` against their English side; and the outputs."""
    outputs = translate_sentences(
        model, [de for de, _ in pairs], src_vocab, tgt_vocab, beam_size, alpha, device, ctx=ctx
    )
    texts = [t.text for t in outputs]
    return corpus_bleu(texts, [en for _, en in pairs]), texts


def heatmap_for(translation: Translation, path: Path, title: str = "") -> Path:
    """The attention heatmap of one translation, a row per generated token (<eos> too)."""
    return plot_attention(
        translation.weights.numpy(), translation.source, translation.labels, path, title=title
    )


# ----------------------------------------------------------------------------------------------
# Saving and loading a trained translator


def save_translator(
    run: Run,
    model: Seq2Seq,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    meta: dict[str, Any],
    name: str = "final",
) -> Path:
    src_vocab.save(run.folder / "vocab_de.json")
    tgt_vocab.save(run.folder / "vocab_en.json")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_checkpoint(run.checkpoints / name, state, meta=meta)


def load_translator(
    run: Run, device: torch.device | None = None
) -> tuple[Seq2Seq, Vocab, Vocab, TrainConfig]:
    """The model, vocabularies and config of a finished (or interrupted) training run."""
    cfg = config_from_dict(TrainConfig, run.config_dict(), source=str(run.folder / "config.json"))
    try:
        src_vocab = Vocab.load(run.folder / "vocab_de.json")
        tgt_vocab = Vocab.load(run.folder / "vocab_en.json")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{run.folder} has no readable vocabularies ({error})") from None
    model = Seq2Seq(cfg.model, len(src_vocab), len(tgt_vocab))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ckpt = load_checkpoint(run.checkpoints / "final", expected=expected, framework="torch")
    model.load_state_dict(ckpt.model)
    return model.to(device or "cpu").eval(), src_vocab, tgt_vocab, cfg


# ----------------------------------------------------------------------------------------------
# The loop


def train_translator(
    cfg: TrainConfig,
    run: Run,
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair],
    test_pairs: Sequence[Pair] | None = None,
) -> dict[str, Any]:
    """Train on in-memory pairs, write vocabularies, checkpoint, plots and heatmap into `run`."""
    seed_everything(cfg.seed)
    threads_note = pick_threads(cfg.threads)
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    ctx = autocast(device, precision)
    src_vocab, tgt_vocab = build_vocabs(train_pairs, cfg.min_freq)
    train_ex = encode_pairs(train_pairs, src_vocab, tgt_vocab, cfg.max_len)
    val_ex = encode_pairs(val_pairs, src_vocab, tgt_vocab)
    if not train_ex:
        raise UsageError(f"no training pairs left after --max-len={cfg.max_len}")
    model = Seq2Seq(cfg.model, len(src_vocab), len(tgt_vocab)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{len(train_ex):,} training pairs, vocabularies de {len(src_vocab):,} / en "
        f"{len(tgt_vocab):,} words, {n_params / 1e6:.2f}M parameters, {device}, "
        f"{describe_precision(cfg.precision, device)}, {threads_note}",
        flush=True,
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train_ex) / cfg.batch_size)  # at most; batches may be fewer
    total_steps = cfg.epochs * steps_per_epoch
    rng = random.Random(cfg.seed)
    time_budget = cfg.time_limit if cfg.time_limit else math.inf  # seconds of training
    train_seconds = 0.0
    epoch_start = time.perf_counter()

    def time_used() -> float:
        return train_seconds + time.perf_counter() - epoch_start

    step, stopped_early = 0, False
    results: dict[str, Any] = {}
    val_bleu_pairs = list(val_pairs[: cfg.val_bleu_sentences])
    stop = StopSignals()  # Ctrl-C or SIGTERM: finish the step, keep the weights, exit 130/143
    with stop, run.progress(total_steps, desc="train", item_name="tok") as bar:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            for src, tgt in batches(train_ex, cfg.batch_size, rng, device):
                # with a time limit, the schedule follows whichever is further along, steps or
                # time, so that a run cut short by the clock still ends at a low learning rate:
                # half a cosine down to lr / 20 (shared.training.lr_factor)
                lr = cfg.lr * lr_factor(
                    step, time_used(), warmup_steps=0, max_steps=total_steps,
                    seconds=cfg.time_limit or None, decay="cosine", min_ratio=0.05,
                )  # fmt: skip
                for group in opt.param_groups:
                    group["lr"] = lr
                with ctx:
                    loss = model.loss(src, tgt, cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                words = int((tgt != PAD).sum())
                bar.advance(loss=loss.item(), items=words, epoch=epoch)
                if step % 20 == 0:
                    run.log(step, loss=loss.item(), lr=lr, epoch=epoch)
                if time_used() > time_budget:
                    stopped_early = True
                    break
                if stop.requested:
                    break
            train_seconds += time.perf_counter() - epoch_start
            if stop.requested:
                break
            val_loss = evaluate_loss(model, val_ex, 128, device, ctx)
            val_bleu = None
            if val_bleu_pairs:
                val_bleu, _ = bleu_on(
                    model, val_bleu_pairs, src_vocab, tgt_vocab, 1, 0.0, device, ctx
                )
            run.log(
                step,
                val_loss=val_loss,
                val_ppl=math.exp(min(val_loss, 50)),
                val_bleu=val_bleu,
                epoch=epoch,
                train_seconds=round(train_seconds, 1),
            )
            shown = (
                f", greedy BLEU on {len(val_bleu_pairs)} val {val_bleu:.1f}"
                if val_bleu is not None
                else ""
            )
            bar.write(
                f"epoch {epoch}: val loss {val_loss:.3f} (ppl {math.exp(val_loss):.1f})"
                f"{shown}, {train_seconds / 60:.1f} min of training"
            )
            results.update(epoch=epoch, val_loss=val_loss, val_bleu=val_bleu)
            save_translator(
                run,
                model,
                src_vocab,
                tgt_vocab,
                meta={
                    "step": step,
                    "epoch": epoch,
                    "val_loss": val_loss,
                    "config": config_to_dict(cfg),
                    "train_seconds": train_seconds,
                },
            )
            if stopped_early:
                bar.write(f"stopping: --time_limit={cfg.time_limit:g} seconds reached")
                break
    if stop.requested:
        meta = {"step": step, "epoch": epoch, "config": config_to_dict(cfg)}
        folder = save_translator(run, model, src_vocab, tgt_vocab, meta, name="interrupted")
        print(
            f"interrupted at step {step} (epoch {epoch}); its weights are in {folder}, the last "
            f"finished epoch's (if any) in {run.checkpoints / 'final'}; this stage cannot "
            f"resume a run yet",
            flush=True,
        )
        raise SystemExit(stop.exit_code)
    results.update(train_seconds=train_seconds, steps=step, stopped_early=stopped_early)
    run.plot_metrics("loss.png", ["loss", "val_loss"], title="cross-entropy per target word")
    if any(r.get("val_bleu") is not None for r in run.metrics()):
        run.plot_metrics("val_bleu.png", ["val_bleu"], title="greedy BLEU on validation")
    if test_pairs:
        start = time.perf_counter()
        bleu, texts = bleu_on(
            model, test_pairs, src_vocab, tgt_vocab, cfg.beam_size, cfg.alpha, device, ctx
        )
        (run.folder / "test_translations.en").write_text("\n".join(texts) + "\n", encoding="utf-8")
        results.update(test_bleu=bleu, test_decode_seconds=time.perf_counter() - start)
        print(
            f"test BLEU {bleu:.2f} (beam {cfg.beam_size}, {len(test_pairs)} sentences, "
            f"sacrebleu 13a, cased)",
            flush=True,
        )
        run.log(step, test_bleu=bleu)
    (example,) = translate_sentences(
        model, [EXAMPLE_SENTENCE], src_vocab, tgt_vocab, cfg.beam_size, cfg.alpha, device
    )
    heatmap_for(
        example, run.folder / "attention.png", title=f"{EXAMPLE_SENTENCE} -> {example.text}"
    )
    print(f"{EXAMPLE_SENTENCE} -> {example.text}", flush=True)
    save_translator(
        run,
        model,
        src_vocab,
        tgt_vocab,
        meta={
            "step": step,
            "config": config_to_dict(cfg),
            **results,
        },
    )
    return results
