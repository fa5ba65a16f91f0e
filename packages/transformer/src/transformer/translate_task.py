"""The translation task (Multi30k German -> English), trained by loop.py's recipe.

    uv run --package transformer train --task translation
    uv run --package transformer eval --run RUN                  # test BLEU again
    uv run --package transformer translate --run RUN "Zwei Hunde spielen im Schnee."

The data half (reading pairs, vocabularies, ids, padding, teacher-forcing batches) is the
attention stage's `attention.translation_data` (case kept, words seen fewer than `min_freq`
times become <unk>), so the two stages' translators read the same data the same way and their
BLEU scores compare. The loss is cross-entropy per target word
with label smoothing (the paper's 0.1: the model is trained to put 90% on the right word and
spread 10% over the rest, which hurts perplexity but helps BLEU). After every epoch: validation
loss (which picks the best epoch, whose weights are kept; or, with `--select_fraction`, the
loss on a slice held out of the training pairs) and greedy BLEU on the first
`val_bleu_sentences` validation captions; at the end (`TranslationRun.report`), BLEU on
test_2016_flickr with beam search, printed with sacrebleu's signature, and samples.md with
translations and references.
The reported figure is the test BLEU, so choosing the epoch by the validation split's loss
does not touch the data it comes from. `prepare` builds it all as a `TrainingTask` (for
`transformer train` and training_kit alike).
"""

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attention.bleu import bleu_signature, corpus_bleu
from attention.translation_data import (
    Pair,
    PairSourceOptions,
    build_vocabs,
    collate_pairs,
    encode_pairs,
    load_multi30k,
    load_pair_splits,
    pad,
    read_pairs,
)
from attention.vocab import PAD, Vocab, detokenize, tokenize
from shared.atomic import write_text_atomic
from shared.checkpoint import load_checkpoint
from shared.config import config_from_dict, config_to_dict, option
from shared.epochs import EpochSampler, length_grouped_batches
from shared.errors import UsageError
from shared.fit import KeepBest, to_device
from shared.runs import Run
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import Setup
from transformer.decoding import beam_search_batch, greedy_decode
from transformer.loop import (
    LoopConfig,
    Recipe,
    best_epoch,
    epoch_task,
    fused_on,
    held_out,
    kept_weights,
)
from transformer.positions import plot_sinusoidal
from transformer.report import plot_curves
from transformer.translator import TransformerTranslator, TranslatorConfig

SPLITS = ("train", "val", "test")


@dataclass
class TranslationConfig(PairSourceOptions, LoopConfig):
    """`train --task translation`: the loop's techniques plus data, decoding and the network."""

    task: Literal["classification", "translation"] = option("translation", "what to train")
    epochs: int = option(5, "passes over the training pairs", ge=1)
    batch_size: int = option(64, "sentence pairs per micro-batch", ge=1)
    min_freq: int = option(2, "keep words seen at least this often in training; others <unk>", ge=1)
    max_len: int = option(50, "drop training pairs with more words than this on either side", ge=1)
    max_train: int = option(0, "use only the first N training pairs (0: all)", ge=0)
    label_smoothing: float = option(0.1, "target probability spread over all words", ge=0, lt=1)
    beam_size: int = option(5, "beam width for the final test BLEU (1: greedy)", ge=1)
    alpha: float = option(0.6, "beam search length penalty exponent (0: none)")
    val_bleu_sentences: int = option(
        300, "validation captions translated (greedy) each epoch", ge=0
    )
    select_fraction: float = option(
        0.0,
        "hold out this fraction of the training pairs to pick the best epoch on (0: pick it by "
        "the validation split's loss; the reported figure is test BLEU)",
        ge=0,
        lt=1,
    )
    model: TranslatorConfig = option(TranslatorConfig, "the network")

    def __post_init__(self) -> None:
        if self.task != "translation":
            raise ValueError("TranslationConfig is for --task=translation")


# ----------------------------------------------------------------------------------------------
# Data


def load_pairs(cfg: TranslationConfig) -> dict[str, list[Pair]]:
    """{"train", "val", "test"} pairs (attention.translation_data.load_pair_splits: the files
    given, else the source, else Multi30k), the training pairs cut to --max_train."""
    data = load_pair_splits(cfg)
    if cfg.max_train:
        data["train"] = data["train"][: cfg.max_train]
    return data


# ----------------------------------------------------------------------------------------------
# The task


def translate_batch(
    model: TransformerTranslator,
    sentences: Sequence[str],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    beam_size: int = 1,
    alpha: float = 0.6,
    batch_size: int = 128,
    device: Any = "cpu",
) -> list[str]:
    """German sentences -> detokenized English, in batches: greedy, or beam search (KV cache)."""
    was_training = model.training
    model.eval()
    ids = [src_vocab.encode(tokenize(s), eos=False) or [PAD] for s in sentences]
    outputs: list[list[int]] = [[] for _ in ids]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        if beam_size == 1:
            decoded = greedy_decode(model, pad([ids[i] for i in chunk]).to(device))
        else:  # the beams of all sentences of the chunk are rows of one batch
            sources = [ids[i] for i in chunk]
            found = beam_search_batch(model, sources, beam_size, alpha, device=device)
            decoded = [out for out, _ in found]
        for i, out in zip(chunk, decoded, strict=True):
            outputs[i] = out
    model.train(was_training)
    return [detokenize(tgt_vocab.decode(out)) for out in outputs]


class TranslationTask:
    """A `shared.fit.Task`: batches from an epoch sampler, the loss, and the evaluation.

    Greedy BLEU on a few hundred captions moves by a point or two from noise alone; the loss on
    all validation captions (or on the selection slice) is a steadier guide to the best epoch.
    """

    def __init__(
        self,
        cfg: TranslationConfig,
        data: dict[str, list[Pair]],
        src: Vocab,
        tgt: Vocab,
        select: list[Pair] | None = None,
    ):
        self.cfg, self.data, self.src_vocab, self.tgt_vocab = cfg, data, src, tgt
        self.train = encode_pairs(data["train"], src, tgt, cfg.max_len)
        if not self.train:
            raise UsageError(f"no training pairs left after --max_len={cfg.max_len}")
        self.val = encode_pairs(data["val"], src, tgt)
        self.select = encode_pairs(select, src, tgt) if select else None
        lengths = [len(s) + len(t) for s, t in self.train]
        self.sampler = EpochSampler(
            lambda epoch: length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        )

    def train_batch(self, generator: Any) -> dict[str, Tensor]:
        return collate_pairs([self.train[i] for i in self.sampler.next()])

    def count(self, batch: dict[str, Tensor]) -> int:
        return int((batch["tgt_out"] != PAD).sum())  # target words: the loss averages over them

    def loss(self, model: nn.Module, batch: dict[str, Tensor], smoothing: float | None = None):
        logits = model(batch["src"], batch["tgt_in"])  # (B, T, V)
        return F.cross_entropy(
            logits.float().flatten(0, 1), batch["tgt_out"].flatten(),  # (B*T, V), (B*T,)
            ignore_index=PAD,
            label_smoothing=self.cfg.label_smoothing if smoothing is None else smoothing,
        )  # fmt: skip

    @torch.no_grad()
    def mean_loss(self, model: nn.Module, examples: list) -> float:
        """Cross-entropy per target word over `examples`, without label smoothing."""
        device = next(model.parameters()).device
        loss_sum, words = 0.0, 0
        for start in range(0, len(examples), 256):
            batch = to_device(collate_pairs(examples[start : start + 256]), device)
            n = self.count(batch)
            loss_sum += float(self.loss(model, batch, smoothing=0.0)) * n
            words += n
        return loss_sum / max(words, 1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, precision_ctx: Any = None) -> dict[str, float]:
        was_training = model.training
        model.eval()
        metrics = {"val_loss": self.mean_loss(model, self.val)}
        if self.select:
            metrics["select_loss"] = self.mean_loss(model, self.select)
        pairs = self.data["val"][: self.cfg.val_bleu_sentences]
        if pairs:
            device = next(model.parameters()).device
            hyps = translate_batch(
                model, [de for de, _ in pairs], self.src_vocab, self.tgt_vocab, device=device
            )
            metrics["val_bleu"] = corpus_bleu(hyps, [en for _, en in pairs])
        model.train(was_training)
        return metrics


def build_model(cfg: TranslationConfig, src: Vocab, tgt: Vocab) -> TransformerTranslator:
    return TransformerTranslator(cfg.model, len(src), len(tgt), pad_id=PAD)


def test_bleu(
    model: TransformerTranslator,
    pairs: Sequence[Pair],
    src: Vocab,
    tgt: Vocab,
    beam_size: int,
    alpha: float,
    device: Any,
    batch_size: int = 128,
) -> tuple[float, list[str], float]:
    """(BLEU, hypotheses, seconds) on `pairs`."""
    start = time.perf_counter()
    hyps = translate_batch(
        model, [de for de, _ in pairs], src, tgt, beam_size, alpha, batch_size, device
    )
    return corpus_bleu(hyps, [en for _, en in pairs]), hyps, time.perf_counter() - start


def write_samples(path: Path, pairs: Sequence[Pair], hyps: Sequence[str], n: int = 20) -> None:
    lines = ["# Test translations (first captions of the test split)", ""]
    for (de, en), hyp in list(zip(pairs, hyps, strict=True))[:n]:
        lines += [f"- de:  {de}", f"  ref: {en}", f"  out: {hyp}", ""]
    write_text_atomic(path, "\n".join(lines))


def translation_data(
    cfg: TranslationConfig, data: dict[str, list[Pair]], vocabs: tuple[Vocab, Vocab] | None
) -> tuple[dict[str, list[Pair]], list[Pair], Vocab, Vocab]:
    """(data with the selection pairs taken out of "train", the selection pairs, source and
    target vocabularies): the vocabularies (unless given: a resumed run's) from the rest."""
    fit_rows, select_rows = held_out(len(data["train"]), cfg.select_fraction, cfg.seed)
    select = [data["train"][i] for i in select_rows]
    data = {**data, "train": [data["train"][i] for i in fit_rows]}
    if vocabs is None:
        vocabs = build_vocabs(data["train"], cfg.min_freq, cfg.model.share_embeddings)
    return data, select, *vocabs


def saved_vocabs(folder: Path) -> tuple[Vocab, Vocab]:
    """A run's source and target vocabularies, as `TranslationRun.write_run_files` saved them."""
    paths = [folder / "src_vocab.json", folder / "tgt_vocab.json"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"{missing[0]} is missing: is {folder} a translation run?")
    return Vocab.load(paths[0]), Vocab.load(paths[1])


@dataclass
class TranslationRun:
    """What the translator's run files, checkpoints and report need to know."""

    cfg: TranslationConfig
    task: TranslationTask
    keep: KeepBest

    def build_model(self) -> TransformerTranslator:
        return build_model(self.cfg, self.task.src_vocab, self.task.tgt_vocab)

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.cfg)}

    def write_run_files(self, folder: Path) -> None:
        self.task.src_vocab.save(folder / "src_vocab.json")  # where `translate` looks for them
        self.task.tgt_vocab.save(folder / "tgt_vocab.json")

    def shard_units(self, model: TransformerTranslator) -> list[nn.Module]:
        return [*model.transformer.encoder.layers, *model.transformer.decoder.layers]

    def report(self, trained: Trained) -> None:
        """Test BLEU of the kept weights, greedy and with beam search; samples.md,
        results.json and the curves."""
        cfg, run, state, device = self.cfg, trained.run, trained.state, trained.env.device
        model, test, src, tgt = trained.model, self.task.data["test"], *self.vocabs
        plot_sinusoidal(run.folder / "positions.png", 50, cfg.model.d_model)
        kept_weights(run, model, device)
        greedy, _, greedy_s = test_bleu(model, test, src, tgt, 1, cfg.alpha, device)
        bleu, hyps, beam_s = test_bleu(model, test, src, tgt, cfg.beam_size, cfg.alpha, device)
        write_samples(run.folder / "samples.md", test, hyps)
        epoch = best_epoch(state, self.task.sampler.batches_per_epoch, cfg.accumulate)
        summary = {
            "test_bleu": bleu, "test_bleu_greedy": greedy, "beam_size": cfg.beam_size,
            "best_epoch": epoch, "selected_by": self.keep.metric,
            "train_minutes": state.elapsed / 60, "decode_seconds_greedy": greedy_s,
            "decode_seconds_beam": beam_s, "signature": bleu_signature(),
        }  # fmt: skip
        write_text_atomic(run.folder / "results.json", json.dumps(summary, indent=2))
        plot_curves(run, "val_bleu")
        print(
            f"test BLEU {bleu:.2f} (beam {cfg.beam_size}), {greedy:.2f} (greedy); kept epoch "
            f"{epoch:.2f} (by {self.keep.metric}), trained {state.elapsed / 60:.1f} min; "
            f"{bleu_signature()}",
            flush=True,
        )

    @property
    def vocabs(self) -> tuple[Vocab, Vocab]:
        return self.task.src_vocab, self.task.tgt_vocab


def prepare(
    cfg: TranslationConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """The translator's `TrainingTask` (for `transformer train --task translation` and
    training_kit): the pairs, the vocabularies (a resumed run's own), `TranslationTask` and the
    recipe; the checkpoint with the lowest selection loss is kept, then test BLEU reported."""
    saved = saved_vocabs(resume.run_folder) if resume is not None else None
    data, select, src, tgt = translation_data(cfg, load_pairs(cfg), saved)
    task = TranslationTask(cfg, data, src, tgt, select)
    keep = KeepBest("select_loss" if select else "val_loss", "min", cfg.patience)
    translation = TranslationRun(cfg, task, keep)
    recipe = Recipe(cfg, task.sampler.batches_per_epoch, translation.build_model, fused_on(env))
    return epoch_task(
        recipe,
        task,
        keep,
        checkpoint_meta=translation.checkpoint_meta,
        write_run_files=translation.write_run_files,
        shard_units=translation.shard_units,
        item_name="tok",
        description=(
            f"transformer translator: {len(task.train):,} training pairs ({len(select):,} more "
            f"held out to pick the best epoch), vocabularies {len(src):,} (de) / {len(tgt):,} "
            f"(en); {recipe.total} optimizer steps ({recipe.per_epoch} an epoch)"
        ),
        report=translation.report,
    )


# ----------------------------------------------------------------------------------------------
# Using a finished run


def load_translation_run(run: Run, device: Any = "cpu"):
    """(config, model, source vocab, target vocab) of a finished run, checked."""
    cfg = config_from_dict(TranslationConfig, run.config_dict(), f"{run.folder}/config.json")
    src, tgt = saved_vocabs(run.folder)
    model = build_model(cfg, src, tgt)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(run.checkpoints / "best", expected, framework="torch")
    model.load_state_dict(checkpoint.model)
    return cfg, model.to(device).eval(), src, tgt


def evaluate_translation_run(
    run: Run, data: Path | None, beam_size: int, batch_size: int, device_name: str
) -> None:
    from shared.device import pick_device

    device = pick_device(device_name)
    cfg, model, src, tgt = load_translation_run(run, device)
    if data is not None:
        pairs, source = read_pairs(data), str(data)
    elif cfg.test_file is not None:
        pairs, source = read_pairs(cfg.test_file), str(cfg.test_file)
    else:
        pairs, source = load_multi30k()["test_2016_flickr"], "Multi30k test_2016_flickr"
    beam = beam_size or cfg.beam_size
    bleu, _, seconds = test_bleu(model, pairs, src, tgt, beam, cfg.alpha, device, batch_size)
    print(f"run: {run.folder}")
    print(f"{source}: BLEU {bleu:.2f} with beam {beam} ({len(pairs)} sentences, {seconds:.0f}s)")
    print(bleu_signature())


def translate_text(run: Run, text: str, beam_size: int = 0, device_name: str = "cpu") -> str:
    from shared.device import pick_device

    device = pick_device(device_name)
    cfg, model, src, tgt = load_translation_run(run, device)
    beam = beam_size or cfg.beam_size
    return translate_batch(model, [text], src, tgt, beam, cfg.alpha, device=device)[0]
