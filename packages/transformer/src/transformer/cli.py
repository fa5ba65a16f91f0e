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
from shared.trainer import Resume, find_resume, resumed_config, run_training
from shared.training import setup

STAGE = "transformer"


def _value_of(argv: list[str], name: str) -> str | None:
    """The last `--name=VALUE` or `--name VALUE` in argv, read before any parsing."""
    value = None
    for i, token in enumerate(argv):
        if token.startswith(f"--{name}="):
            value = token.split("=", 1)[1]
        elif token == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def _task_of(argv: list[str], resume: Resume | None) -> str:
    """The task a run trains: a resumed run's own, else --task, else the `task` key of a
    --config file, else the default."""
    if resume is not None:
        return resume.meta.get("config", {}).get("task", "classification")
    config = _value_of(argv, "config")
    task = _value_of(argv, "task") or (config and load_toml(Path(config)).get("task"))
    return task or "classification"


def train(argv: list[str]) -> None:
    """Train: pick the task's config class, then `shared.trainer` runs the task's `prepare`.

    With --resume, the checkpoint's own config is the base and argv changes it (a new
    --max_steps, say), and the run continues exactly where it stopped, in a new folder."""
    ref = _value_of(argv, "resume")
    resume = find_resume(STAGE, ref) if ref else None
    if _task_of(argv, resume) == "translation":
        from transformer.translate_task import TranslationConfig as config_cls
        from transformer.translate_task import prepare

        description = "Train the encoder-decoder Transformer on Multi30k German -> English."
    else:
        from transformer.classify import ClassifyConfig as config_cls
        from transformer.classify import prepare

        description = (
            "Train a transformer sentiment classifier (SST-2 by default); "
            "`--task translation --help` shows the translator's options."
        )
    prog = f"{STAGE} train"
    if resume is not None:
        cfg = resumed_config(config_cls, argv, prog, resume)
    else:
        cfg = parse_config(config_cls, argv, prog=prog, description=description)
        if cfg.resume:  # from a --config file: too late, the task was chosen without it
            raise UsageError("give --resume on the command line (it decides the task)")
    env = setup(cfg)
    run_training(prepare(cfg, env, resume), env, resume)


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
