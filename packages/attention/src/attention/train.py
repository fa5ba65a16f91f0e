"""The translation task and what its run needs, on sentence pairs held in memory.

The task (loss, translation, BLEU) is separate from the loop, and it takes plain
`(German, English)` string pairs, so the same code trains on Multi30k (`prepare` loads it) or on
a few synthetic pairs in a test (`translator_task`). The data half (vocabularies, ids, batches)
is translation_data.py, shared with the transformer stage.

One epoch: shuffle the training pairs, sort them by length within chunks of 50 batches (so a
batch holds sentences of similar length and little padding), and take Adam steps on the mean
cross-entropy per target word, with gradient clipping, label smoothing and a cosine learning-rate
decay. After each epoch: validation loss, greedy BLEU on a slice of the validation set, and a
checkpoint. At the end (`TranslatorRun.report`): BLEU of beam search on the test pairs and a
heatmap of the attention. The last epoch's weights are the ones kept, as checkpoints/final (no
epoch is chosen by a score).

The loop is `shared.fit.fit` and the run's life (resume, Ctrl-C, checkpoints) is
`shared.trainer`, the ones every stage trains with; `TranslationTask` is what they need to know
about this problem. The epochs come from `shared.epochs.EpochSampler`, whose order depends on
(seed, epoch) only, so a checkpoint (weights, Adam's moments, the step, the epoch position,
every RNG state) resumes exactly: `train --resume=RUN` continues an interrupted run with the
losses an uninterrupted one would have had.
"""

import math
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
from attention.translation_data import (
    Example,
    Pair,
    PairSourceOptions,
    batches,
    build_vocabs,
    encode_pairs,
    load_pair_splits,
    pad,
)
from attention.vocab import PAD, Vocab, detokenize, tokenize
from shared.checkpoint import load_checkpoint
from shared.config import config_from_dict, config_to_dict, option
from shared.epochs import EpochSampler, length_grouped_batches
from shared.errors import CheckpointError, UsageError
from shared.runs import Run
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import RunOptions, Setup, lr_factor

STAGE = "attention"
EXAMPLE_SENTENCE = "Ein Mann fährt Fahrrad."


@dataclass
class TrainConfig(PairSourceOptions, RunOptions):
    """`attention train`: the data (`PairSourceOptions`), the run options every stage shares,
    then decoding and the network."""

    max_steps: int = option(
        0, "stop after this many optimizer steps (0: after --epochs or the time limit)", ge=0
    )
    time_limit: float = option(
        0.0, "stop training after this many seconds (0: none); the lr decays on time too", ge=0
    )
    eval_interval: int = option(0, "evaluate every N steps (0: at the end of each epoch)", ge=0)
    precision: Literal["auto", "fp32", "bf16"] = option(
        "fp32", "auto: bf16 where the CPU or GPU has it natively (slower here: see the README)"
    )
    seed: int = option(0, "random seed for data order, dropout and weights")
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
    resume: str | None = option(None, "continue a run (its name, folder or a checkpoint folder)")
    model: Seq2SeqConfig = option(Seq2SeqConfig, "the network")

    def __post_init__(self) -> None:
        pass  # --epochs always ends training, so neither --max_steps nor --time_limit is needed


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


def load_translator(
    run: Run, device: torch.device | None = None
) -> tuple[Seq2Seq, Vocab, Vocab, TrainConfig]:
    """The model, vocabularies and config of a finished (or interrupted) training run."""
    cfg = config_from_dict(TrainConfig, run.config_dict(), source=str(run.folder / "config.json"))
    src_vocab, tgt_vocab = run_vocabs(run.folder)
    model = Seq2Seq(cfg.model, len(src_vocab), len(tgt_vocab))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ckpt = load_checkpoint(run.checkpoints / "final", expected=expected, framework="torch")
    model.load_state_dict(ckpt.model)
    return model.to(device or "cpu").eval(), src_vocab, tgt_vocab, cfg


# ----------------------------------------------------------------------------------------------
# The task and the loop


class TranslationTask:
    """A `shared.fit.Task`: batches of similar-length pairs, epoch by epoch; the loss; the
    evaluation after each epoch (validation loss and greedy BLEU on a slice)."""

    def __init__(
        self, cfg: TrainConfig, train: list[Example], val: list[Example], val_pairs: list[Pair],
        src_vocab: Vocab, tgt_vocab: Vocab,
    ) -> None:  # fmt: skip
        self.cfg, self.train, self.val = cfg, train, val
        self.val_pairs, self.src_vocab, self.tgt_vocab = val_pairs, src_vocab, tgt_vocab
        lengths = [len(src) for src, _ in train]  # sorted by source length within chunks
        self.sampler = EpochSampler(
            lambda epoch: length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        )

    def train_batch(self, generator: Any) -> tuple[torch.Tensor, torch.Tensor]:
        group = [self.train[i] for i in self.sampler.next()]
        return pad([s for s, _ in group]), pad([t for _, t in group])  # (B, S), (B, T)

    def count(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return int((batch[1] != PAD).sum())  # target words: the loss averages over them

    def loss(self, model: Seq2Seq, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        src, tgt = batch
        return model.loss(src, tgt, self.cfg.label_smoothing)

    def evaluate(self, model: Seq2Seq, precision_ctx: Any) -> dict[str, float]:
        device = next(model.parameters()).device
        val_loss = evaluate_loss(model, self.val, 128, device, precision_ctx())
        metrics = {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50))}
        if self.val_pairs:
            metrics["val_bleu"], _ = bleu_on(
                model, self.val_pairs, self.src_vocab, self.tgt_vocab, 1, 0.0, device,
                precision_ctx(),
            )  # fmt: skip
        return metrics


def load_translation_pairs(cfg: TrainConfig) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """(train, val, test) pairs: the three files given, else the source, else Multi30k."""
    data = load_pair_splits(cfg)
    return data["train"], data["val"], data["test"]


def run_vocabs(folder: Path) -> tuple[Vocab, Vocab]:
    """A run's German and English vocabularies, as `TranslatorRun.write_run_files` saved them."""
    try:
        return Vocab.load(folder / "vocab_de.json"), Vocab.load(folder / "vocab_en.json")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder} has no readable vocabularies ({error})") from None


@dataclass
class TranslatorRun:
    """The translator's pieces of a `TrainingTask`: the model, Adam, the schedule, the run
    files, and the after-work (the summary, the plots, test BLEU, the heatmap)."""

    cfg: TrainConfig
    task: TranslationTask
    test_pairs: Sequence[Pair]

    @property
    def total(self) -> int:
        """The run's steps: --max_steps, else --epochs of them."""
        return self.cfg.max_steps or self.cfg.epochs * self.task.sampler.batches_per_epoch

    def build_model(self) -> Seq2Seq:
        return Seq2Seq(self.cfg.model, len(self.task.src_vocab), len(self.task.tgt_vocab))

    def build_optimizer(self, model: Seq2Seq) -> torch.optim.Adam:
        optimizer = torch.optim.Adam(model.parameters(), lr=self.cfg.lr)
        optimizer.param_groups[0]["peak_lr"] = self.cfg.lr  # shared.fit: lr = peak * schedule
        return optimizer

    def schedule(self, step: int, elapsed: float, seconds: float | None) -> float:
        """Half a cosine down to lr / 20. With a time limit it follows whichever is further
        along, steps or time, so a run cut short by the clock still ends at a low rate."""
        return lr_factor(
            step, elapsed, warmup_steps=0, max_steps=self.total, seconds=seconds,
            decay="cosine", min_ratio=0.05,
        )  # fmt: skip

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.cfg)}

    def write_run_files(self, folder: Path) -> None:
        self.task.src_vocab.save(folder / "vocab_de.json")  # where `translate` looks for them
        self.task.tgt_vocab.save(folder / "vocab_en.json")

    def check_resume(self, resume: Resume) -> None:
        """Refuse the final checkpoint of a run from before the shared layout: it kept the
        weights alone, no optimizer and no loop state to continue from."""
        if "fit" not in resume.meta:
            raise CheckpointError(
                f"{resume.checkpoint} holds the weights only (a run finished before the shared "
                "checkpoint layout); resume from one of its step_* checkpoints"
            )

    def shard_units(self, model: Seq2Seq) -> list[torch.nn.Module]:
        return [model.enc_fwd, model.enc_bwd, model.decoder]  # the recurrent layers

    def finish(self, trained: Trained) -> dict[str, Any]:
        """The run's summary, kept in checkpoints/final's meta: the last evaluation's scores."""
        state = trained.state
        last = [m for m in trained.run.metrics() if "val_loss" in m]
        return {
            "epoch": state.sampler.epochs_done, "val_loss": last[-1]["val_loss"] if last else None,
            "val_bleu": last[-1].get("val_bleu") if last else None,
            "train_seconds": state.elapsed, "steps": state.step,
            "stopped_early": bool(self.cfg.time_limit) and state.step < self.total,
        }  # fmt: skip

    def report(self, trained: Trained) -> dict[str, Path]:
        """The curves, test BLEU with beam search (logged as test_bleu) and the heatmap of the
        example sentence."""
        cfg, run, model, device = self.cfg, trained.run, trained.model, trained.env.device
        src, tgt = self.task.src_vocab, self.task.tgt_vocab
        run.plot_metrics("loss.png", ["loss", "val_loss"], title="cross-entropy per target word")
        if any(r.get("val_bleu") is not None for r in run.metrics()):
            run.plot_metrics("val_bleu.png", ["val_bleu"], title="greedy BLEU on validation")
        if self.test_pairs:
            self.test_bleu(trained)
        (example,) = translate_sentences(
            model, [EXAMPLE_SENTENCE], src, tgt, cfg.beam_size, cfg.alpha, device
        )
        heatmap = heatmap_for(
            example, run.folder / "attention.png", title=f"{EXAMPLE_SENTENCE} -> {example.text}"
        )
        print(f"{EXAMPLE_SENTENCE} -> {example.text}", flush=True)
        return {"attention heatmap": heatmap}

    def test_bleu(self, trained: Trained) -> float:
        """BLEU of beam search on the test pairs: printed, logged, translations written."""
        cfg, run, device = self.cfg, trained.run, trained.env.device
        start = time.perf_counter()
        bleu, texts = bleu_on(
            trained.model, self.test_pairs, self.task.src_vocab, self.task.tgt_vocab,
            cfg.beam_size, cfg.alpha, device, trained.precision_ctx(),
        )  # fmt: skip
        (run.folder / "test_translations.en").write_text("\n".join(texts) + "\n", encoding="utf-8")
        seconds = time.perf_counter() - start
        print(
            f"test BLEU {bleu:.2f} (beam {cfg.beam_size}, {len(self.test_pairs)} sentences, "
            f"sacrebleu 13a, cased)",
            flush=True,
        )
        run.log(trained.state.step, test_bleu=bleu, test_decode_seconds=seconds)
        return bleu


def translator_task(
    cfg: TrainConfig,
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair],
    test_pairs: Sequence[Pair] = (),
    vocabs: tuple[Vocab, Vocab] | None = None,
) -> TrainingTask:
    """The `TrainingTask` for in-memory pairs (Multi30k's or a test's): the vocabularies
    (unless given: a resumed run's) from the training pairs, `TranslationTask`, Adam."""
    src_vocab, tgt_vocab = vocabs or build_vocabs(train_pairs, cfg.min_freq)
    train_ex = encode_pairs(train_pairs, src_vocab, tgt_vocab, cfg.max_len)
    if not train_ex:
        raise UsageError(f"no training pairs left after --max-len={cfg.max_len}")
    val_ex = encode_pairs(val_pairs, src_vocab, tgt_vocab)
    task = TranslationTask(cfg, train_ex, val_ex, list(val_pairs[: cfg.val_bleu_sentences]),
                           src_vocab, tgt_vocab)  # fmt: skip
    translator = TranslatorRun(cfg, task, test_pairs)
    return TrainingTask(
        stage=STAGE,
        config=cfg,
        task=task,
        build_model=translator.build_model,
        build_optimizer=translator.build_optimizer,
        schedule=translator.schedule,
        checkpoint_meta=translator.checkpoint_meta,
        write_run_files=translator.write_run_files,
        shard_units=translator.shard_units,
        grad_clip=cfg.grad_clip,
        max_steps=translator.total,
        item_name="tok",
        description=(
            f"{len(train_ex):,} training pairs, vocabularies de {len(src_vocab):,} / en "
            f"{len(tgt_vocab):,} words"
        ),
        sampler=task.sampler,
        evaluate_at_end=True,  # a run cut by the time limit is evaluated where it stopped
        check_resume=translator.check_resume,
        finish=translator.finish,
        report=translator.report,
    )


def prepare(
    cfg: TrainConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """`attention train`'s task: the pairs (files or Multi30k), the vocabularies (a resumed
    run's own), the translator. It runs before the run folder exists: a missing dataset leaves
    nothing behind."""
    train_pairs, val_pairs, test_pairs = load_translation_pairs(cfg)
    vocabs = run_vocabs(resume.run_folder) if resume is not None else None
    return translator_task(cfg, train_pairs, val_pairs, test_pairs, vocabs)
