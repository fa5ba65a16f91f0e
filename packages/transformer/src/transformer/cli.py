"""`uv run --package transformer train | eval | translate`: the stage's commands.

    uv run --package transformer train                          # SST-2 sentiment classifier
    uv run --package transformer train --task translation       # Multi30k German -> English
    uv run --package transformer train --resume=RUN             # continue a run exactly
    uv run --package transformer eval --run RUN --data FILE.tsv # accuracy on sentence<TAB>label
    uv run --package transformer eval --run RUN                 # a translation run: test BLEU
    uv run --package transformer translate --run RUN "Ein Mann fährt Fahrrad."

`train` reads --task first (from the command line or the --config file) and then parses that
task's options, so `train --help` lists the classifier's and `train --task translation --help`
the translator's. Data is loaded before the run folder is made, so a command that fails on its
options or its data leaves nothing behind.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.config import config_from_dict, load_toml, option, parse_config
from shared.errors import UsageError
from shared.runs import Run

STAGE = "transformer"


def _task_of(argv: list[str]) -> str:
    """The --task value (the last one), else the `task` key of a --config file, else the default."""
    task = None
    for i, token in enumerate(argv):
        if token.startswith("--task="):
            task = token.split("=", 1)[1]
        elif token == "--task" and i + 1 < len(argv):
            task = argv[i + 1]
        elif token.startswith("--config="):
            task = task or load_toml(Path(token.split("=", 1)[1])).get("task")
        elif token == "--config" and i + 1 < len(argv):
            task = task or load_toml(Path(argv[i + 1])).get("task")
    return task or "classification"


def _resumed(argv: list[str]) -> tuple[Path | None, dict]:
    """With --resume: the checkpoint to continue from and its run's saved config."""
    from shared.checkpoint import read_meta
    from shared.runs import find_checkpoint

    ref = None
    for i, token in enumerate(argv):
        if token.startswith("--resume="):
            ref = token.split("=", 1)[1]
        elif token == "--resume" and i + 1 < len(argv):
            ref = argv[i + 1]
    if not ref:
        return None, {}
    folder = find_checkpoint(STAGE, ref)
    return folder, read_meta(folder).get("config", {})


def train(argv: list[str]) -> None:
    """Train; with --resume, the checkpoint's own config is the base and argv changes it (a
    new --max_steps, say), and the run continues exactly where it stopped, in a new folder."""
    resume_from, saved = _resumed(argv)
    task = saved.get("task") if resume_from is not None else None
    if (task or _task_of(argv)) == "translation":
        from transformer.translate_task import TranslationConfig, load_pairs, train_translator

        cfg = parse_config(
            TranslationConfig, argv, prog="transformer train", saved=saved or None,
            description="Train the encoder-decoder Transformer on Multi30k German -> English.",
        )  # fmt: skip
        data = load_pairs(cfg)
        run = Run.start(STAGE, cfg, name=cfg.run_name)
        train_translator(cfg, run, data, resume_from)
    else:
        from transformer.classify import ClassifyConfig, load_sentences, train_classifier

        cfg = parse_config(
            ClassifyConfig, argv, prog="transformer train", saved=saved or None,
            description="Train a transformer sentiment classifier (SST-2 by default); "
            "`--task translation --help` shows the translator's options.",
        )  # fmt: skip
        splits = load_sentences(cfg)
        run = Run.start(STAGE, cfg, name=cfg.run_name)
        train_classifier(cfg, run, splits, resume_from)
    run.finish()


@dataclass
class EvalConfig:
    run: str | None = option(
        None, "a run folder, or a name under runs/transformer/ (default: latest)"
    )
    data: Path | None = option(
        None,
        "classifier: any sentence<TAB>label file (default: GLUE's SST-2 dev set); "
        "translator: a German<TAB>English file (default: test_2016_flickr)",
    )
    batch_size: int = option(256, "sentences per batch")
    beam_size: int = option(0, "translator: beam width (0: the run's setting; 1: greedy)")
    device: str = option("cpu", "auto, cpu, cuda, cuda:N or mps")


def evaluate(argv: list[str]) -> None:
    cfg = parse_config(EvalConfig, argv, prog="transformer eval",
                       description="Score a trained run on a file or its test split.")  # fmt: skip
    run = Run.open(STAGE, cfg.run)
    task = run.config_dict().get("task", "classification")
    if task == "translation":
        from transformer.translate_task import evaluate_translation_run

        evaluate_translation_run(run, cfg.data, cfg.beam_size, cfg.batch_size, cfg.device)
    else:
        _evaluate_classifier(run, cfg)


def _evaluate_classifier(run: Run, cfg: EvalConfig) -> None:
    import torch

    from attention.vocab import Vocab
    from shared.checkpoint import load_checkpoint
    from shared.device import pick_device
    from transformer.classify import ClassifyConfig, build_model, predict, sst2_splits
    from transformer.report import confusion_matrix, format_confusion_matrix
    from transformer.sst2 import SentimentDataset, read_tsv

    trained = config_from_dict(ClassifyConfig, run.config_dict(), f"{run.folder}/config.json")
    if cfg.data is not None:
        sentences, labels = read_tsv(cfg.data)
        source = str(cfg.data)
    else:
        sentences, labels = sst2_splits()["dev"]
        source = "SST-2 dev (GLUE's dev set)"
    vocab_path = run.folder / "vocab.json"
    if not vocab_path.is_file():
        raise UsageError(f"{vocab_path} is missing: is {run.folder} a finished classifier run?")
    vocab = Vocab.load(vocab_path)
    model = build_model(trained, vocab)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(run.checkpoints / "best", expected, framework="torch")
    model.load_state_dict(checkpoint.model)
    device = pick_device(cfg.device)
    model.to(device)
    dataset = SentimentDataset(sentences, labels, vocab, trained.model.max_len)
    probs, loss = predict(model, dataset, cfg.batch_size, device)
    predictions = probs.argmax(dim=-1)
    correct = int((predictions == torch.tensor(labels)).sum())
    print(f"run: {run.folder} (best epoch {checkpoint.meta.get('epoch')})")
    print(
        f"{source}: accuracy {correct / len(labels):.2%} ({correct}/{len(labels)}), loss {loss:.4f}"
    )
    print(format_confusion_matrix(confusion_matrix(labels, predictions.tolist())))


@dataclass
class TranslateConfig:
    text: str = option("Ein Mann fährt Fahrrad.", "German text to translate", positional=True)
    run: str | None = option(None, "a translation run (default: the latest transformer run)")
    beam_size: int = option(0, "beam width (0: the run's setting; 1: greedy)")
    device: str = option("cpu", "auto, cpu, cuda, cuda:N or mps")
    decode: Literal["beam", "greedy"] = option("beam", "decoding strategy")


def translate(argv: list[str]) -> None:
    cfg = parse_config(TranslateConfig, argv, prog="transformer translate",
                       description="Translate German text with a trained run.")  # fmt: skip
    from transformer.translate_task import translate_text

    run = Run.open(STAGE, cfg.run)
    if run.config_dict().get("task") != "translation":
        raise UsageError(f"{run.folder} is not a translation run; give --run of one")
    beam = 1 if cfg.decode == "greedy" else cfg.beam_size
    print(translate_text(run, cfg.text, beam, cfg.device))
