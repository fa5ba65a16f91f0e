"""`gpt export`: a run's model as a file that runs without this code, checked against it.

    uv run --package gpt export --run RUN --format onnx           # -> RUN/export/model.onnx
    uv run --package gpt export --run RUN --format torch-export   # -> RUN/export/model.pt2

What is exported is `ids (batch, seq) -> logits (batch, seq, vocab)`, the model without its KV
cache, with both axes dynamic: one file takes any batch and any length up to the block size.

- ONNX: torch's exporter (`torch.onnx.export(..., dynamo=True)`, which needs onnxscript) traces
  the model with `torch.export` and translates each op into ONNX; onnxruntime, or any other ONNX
  runtime, in any language, then runs it.
- torch.export: the same graph saved as a `.pt2` program, loaded back by
  `torch.export.load(path).module()` in any Python with torch and none of this project.
  TorchScript (`torch.jit.trace`), its predecessor, is deprecated in the torch this project uses
  and records Python decisions (causal or not, which position table) as constants; it is left out.

Every export is checked before it is kept: logits against ours on random ids of three shapes
(within 1e-4), then a 20-token greedy continuation decoded by the exported model (the whole
sequence again each step) against `gpt.generate` with its KV cache: the same tokens.
"""

import copy
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from gpt.generate import generate
from gpt.model import GPT
from shared.config import option, parse_config
from shared.errors import UsageError

TOLERANCE = 1e-4


class LogitsOnly(nn.Module):
    """ids (B, T) -> logits (B, T, vocab): the exported signature, no cache or mask.

    A copy of the model, with attention written out (`fused=False`, the same math): torch's fused
    kernel wants `is_causal` as a Python bool, and with a dynamic length "T > 1" is symbolic.
    """

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = copy.deepcopy(model)
        for module in self.model.modules():
            if hasattr(module, "fused"):
                module.fused = False

    def forward(self, ids: Tensor) -> Tensor:
        return self.model(ids)


def dynamic_shapes(model: GPT) -> dict:
    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("seq", min=1, max=model.config.block_size)
    return {"ids": {0: batch, 1: seq}}


def export_onnx(model: GPT, path: Path) -> None:
    example = torch.zeros(2, min(8, model.config.block_size), dtype=torch.long)
    torch.onnx.export(LogitsOnly(model).eval(), (example,), str(path), dynamo=True,
                      dynamic_shapes=dynamic_shapes(model), input_names=["ids"],
                      output_names=["logits"], external_data=False, verbose=False)  # fmt: skip


def export_program(model: GPT, path: Path) -> None:
    example = torch.zeros(2, min(8, model.config.block_size), dtype=torch.long)
    program = torch.export.export(LogitsOnly(model).eval(), (example,),
                                  dynamic_shapes=dynamic_shapes(model))  # fmt: skip
    torch.export.save(program, str(path))


def loader(path: Path):
    """A function ids (B, T) LongTensor -> logits (B, T, V) float tensor, running the file."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda ids: torch.from_numpy(session.run(None, {"ids": ids.numpy()})[0])
    module = torch.export.load(str(path)).module()
    return lambda ids: module(ids).detach()


@torch.no_grad()
def verify(model: GPT, run_exported, prompt: list[int], new_tokens: int = 20) -> dict:
    """Compare an exported model with ours; raises AssertionError with the figures if it differs."""
    generator = torch.Generator().manual_seed(0)
    V, block = model.config.vocab_size, model.config.block_size
    worst = 0.0
    for shape in [(1, 1), (3, min(17, block)), (2, block)]:
        ids = torch.randint(0, V, shape, generator=generator)
        worst = max(worst, float((run_exported(ids) - model(ids)).abs().max()))
    if worst > TOLERANCE:
        raise AssertionError(f"logits differ by {worst:.2e} (allowed {TOLERANCE:.0e})")
    prompt = prompt[-(block - new_tokens) :]
    ours = generate(model, torch.tensor([prompt]), new_tokens, temperature=0)[0, len(prompt) :]
    ids = torch.tensor([prompt])
    for _ in range(new_tokens):  # greedy, recomputing the whole sequence each step
        next_id = run_exported(ids)[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        ids = torch.cat([ids, next_id], dim=1)
    theirs = ids[0, len(prompt) :]
    if not torch.equal(ours, theirs):
        raise AssertionError(f"greedy tokens differ: ours {ours.tolist()}, "
                             f"exported {theirs.tolist()}")  # fmt: skip
    return {"max_logit_difference": worst, "greedy_tokens_equal": new_tokens}


@dataclass
class ExportConfig:
    run: str | None = option(None, "the gpt run to export (default: the latest)")
    format: Literal["onnx", "torch-export", "torchscript"] = option(
        "onnx", "onnx (any ONNX runtime) or torch-export (a .pt2 program for torch)"
    )
    out: Path | None = option(None, "where to write (default: RUN/export/model.onnx or .pt2)")
    prompt: str = option("\n", "text whose greedy continuation is compared (\\n: a newline)")


def export(argv: list[str]) -> None:
    from gpt.runs import load_run_model, run_folder_of

    cfg = parse_config(ExportConfig, argv, prog="gpt export", description=__doc__.split("\n\n")[0])
    if cfg.format == "torchscript":
        raise UsageError("--format torchscript: torch.jit.trace is deprecated in this torch and "
                         "bakes in Python decisions; use --format torch-export")  # fmt: skip
    model, tok, meta, folder = load_run_model(cfg.run, torch.device("cpu"))
    if meta.get("quantized", {}).get("method") == "dynamic-int8":
        raise UsageError(f"{run_folder_of(folder).name} holds torch.ao's dynamic int8 layers, "
                         "which neither format exports; export its float run, or quantize it "
                         "with --method int8-weight-only")  # fmt: skip
    suffix = ".onnx" if cfg.format == "onnx" else ".pt2"
    out = cfg.out or run_folder_of(folder) / "export" / f"model{suffix}"
    if out.suffix != suffix:
        raise UsageError(f"--out {out}: a {cfg.format} file should end in {suffix}")
    prompt = tok.encode(cfg.prompt.replace("\\n", "\n")) or [0]
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=suffix, dir=out.parent, prefix=".partial-")
    os.close(handle)
    tmp = Path(tmp)
    try:
        (export_onnx if cfg.format == "onnx" else export_program)(model.eval(), tmp)
        report = verify(model, loader(tmp), prompt)
        os.chmod(tmp, 0o644)  # mkstemp made it private
        os.replace(tmp, out)  # only a checked file takes the name
    except AssertionError as error:
        print(f"error: the exported model does not match: {error}; nothing written",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1) from None
    finally:
        tmp.unlink(missing_ok=True)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.2f} MB): logits within {report['max_logit_difference']:.1e} "
          f"of ours, {report['greedy_tokens_equal']} greedy tokens identical")  # fmt: skip
