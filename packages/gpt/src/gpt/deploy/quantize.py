"""`gpt quantize`: a run's linear layers as int8, written as a new run (`gpt.deploy.int8`).

    uv run --package gpt quantize --run RUN --method int8-weight-only   # -> runs/gpt/RUN-int8w
    uv run --package gpt quantize --run RUN --method dynamic-int8       # -> runs/gpt/RUN-int8d

The new run holds the int8 rows and their scales, the tokenizer and the source's meta; every
gpt command reads it like any other run (`gpt eval --run RUN-int8w` gives its loss).
"""

import shutil
from dataclasses import dataclass
from typing import Literal

import torch

from gpt.deploy.int8 import int8_state
from gpt.runs import STAGE, load_run_model, run_folder_of
from shared.checkpoint import save_checkpoint
from shared.config import option, parse_config
from shared.errors import UsageError
from shared.runs import Run

SUFFIX = {"int8-weight-only": "int8w", "dynamic-int8": "int8d"}  # the new run's name: RUN-int8w


@dataclass
class QuantizeConfig:
    run: str | None = option(None, "the gpt run to quantize (default: the latest)")
    method: Literal["int8-weight-only", "dynamic-int8"] = option(
        "int8-weight-only", "int8 weights and a float matmul, or int8 weights and activations"
    )
    out: str | None = option(None, "name of the new run (default: RUN-int8w or RUN-int8d)")


def quantize(argv: list[str]) -> None:
    cfg = parse_config(QuantizeConfig, argv, prog="gpt quantize",
                       description=__doc__.split("\n\n")[0])  # fmt: skip
    model, _, meta, folder = load_run_model(cfg.run, torch.device("cpu"))
    source = run_folder_of(folder)
    if meta.get("quantized"):
        raise UsageError(f"{source.name} is already quantized ({meta['quantized']['method']}); "
                         "quantize the float run it came from")  # fmt: skip
    state = int8_state(model)  # the same file for both methods; the layers are built on load
    kept = {k: v for k, v in meta.items() if k not in ("optimizer_state", "files", "format")}
    if kept.get("sft", {}).get("lora"):
        del kept["sft"]  # the adapters are merged into the weights now
    kept["quantized"] = {"method": cfg.method, "from": str(folder)}
    run = Run.start(STAGE, cfg, name=cfg.out or f"{source.name}-{SUFFIX[cfg.method]}", quiet=True)
    shutil.copytree(source / "tokenizer", run.folder / "tokenizer")
    path = save_checkpoint(run.checkpoints / "final", state, None, kept)
    before = (folder / "model.safetensors").stat().st_size
    after = (path / "model.safetensors").stat().st_size
    print(f"{run.folder}: {cfg.method}, model.safetensors {before / 1e6:.2f} MB -> "
          f"{after / 1e6:.2f} MB ({after / before:.0%} of {source.name}'s); "
          f"`gpt eval --run {run.folder.name}` gives its loss")  # fmt: skip
