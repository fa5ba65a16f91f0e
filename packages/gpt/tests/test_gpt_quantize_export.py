"""int8 weights and exported models, each checked against the float model they came from."""

import pytest
import torch
import torch.nn.functional as F

from gpt.deploy.int8 import Int8Linear, absmax_int8, quantize_model
from gpt.model import GPT, GPTConfig
from shared.commands import run_command

TEXT = "To be, or not to be, that is the question.\nWhether 'tis nobler in the mind\n" * 40


def test_absmax_rows_round_to_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(64, 48) * torch.logspace(-2, 1, 64)[:, None]  # rows of very different size
    q, scale = absmax_int8(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and scale.shape == (64,)
    error = (q.float() * scale[:, None] - w).abs()
    assert bool((error <= scale[:, None] / 2 + 1e-7).all())  # per row, not per matrix


def test_int8_linear_is_the_float_matmul_of_its_dequantized_weight():
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 16)
    layer = Int8Linear.from_linear(linear)
    x = torch.randn(4, 7, 32)
    with torch.no_grad():
        exact = F.linear(x, layer.dequantized_weight(), linear.bias)
        torch.testing.assert_close(layer(x), exact)
        float_out = linear(x)
        assert float((layer(x) - float_out).abs().max()) < 0.02 * float(float_out.abs().max())


@pytest.mark.parametrize("method", ["int8-weight-only", "dynamic-int8"])
def test_a_quantized_model_keeps_its_predictions(method):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, block_size=32, n_layer=2, n_head=2, n_embd=64)).eval()
    ids = torch.randint(0, 40, (3, 32))
    with torch.no_grad():
        before = model(ids).softmax(-1)
        after = quantize_model(model, method)(ids).softmax(-1)
    assert float((after - before).abs().max()) < 0.02


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny):
    root = tmp_path_factory.mktemp("deploy")
    text = root / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    patch = pytest.MonkeyPatch()
    patch.setenv("RUNS_DIR", str(root / "runs"))
    try:
        train_tiny(text, "float", n_embd=64, batch_size=16, eval_iters=2, max_steps=60)
        yield root
    finally:
        patch.undo()


def eval_loss(name: str, text, capsys) -> float:
    assert run_command("eval", ["--stage=gpt", f"--run={name}", f"--text_file={text}",
                                "--precision=fp32"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return float(line.split("loss ")[1].split()[0])


@pytest.mark.parametrize("method,name", [("int8-weight-only", "float-int8w"),
                                         ("dynamic-int8", "float-int8d")])  # fmt: skip
def test_quantize_command_shrinks_the_run_and_keeps_its_loss(runs, method, name, monkeypatch,
                                                             capsys):  # fmt: skip
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    assert run_command("quantize", ["--stage=gpt", "--run=float", f"--method={method}"]) == 0
    folder = runs / "runs" / "gpt"
    size = {n: (folder / n / "checkpoints").glob("*/model.safetensors") for n in ("float", name)}
    size = {n: max(p.stat().st_size for p in paths) for n, paths in size.items()}
    assert size[name] < 0.45 * size["float"]  # the blocks' matrices are a quarter of their size
    text = runs / "text.txt"
    base, quantized = eval_loss("float", text, capsys), eval_loss(name, text, capsys)
    assert abs(quantized - base) < 0.02, (base, quantized)  # nats; a broken layer costs > 0.5
    assert run_command("sample", ["--stage=gpt", f"--run={name}", "--max_new_tokens=20"]) == 0
    assert run_command("quantize", ["--stage=gpt", f"--run={name}"]) == 2  # already quantized
    assert "already quantized" in capsys.readouterr().err


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torch-export", ".pt2")])
def test_export_writes_a_model_that_runs_without_ours(runs, fmt, suffix, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    out = runs / f"model{suffix}"
    assert run_command("export", ["--stage=gpt", "--run=float", f"--format={fmt}",
                                  f"--out={out}"]) == 0  # fmt: skip
    assert "20 greedy tokens identical" in capsys.readouterr().out
    from gpt.deploy.export import loader
    from gpt.runs import load_run_model

    model, _, _, _ = load_run_model("float", torch.device("cpu"))
    ids = torch.randint(0, model.config.vocab_size, (5, 23))  # a shape it was not exported with
    with torch.no_grad():
        torch.testing.assert_close(loader(out)(ids), model(ids), atol=1e-4, rtol=0)
    assert not list(runs.glob(".partial-*"))


def test_export_refusals_write_nothing(runs, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    assert run_command("export", ["--stage=gpt", "--run=float", "--format=torchscript"]) == 2
    assert "use --format torch-export" in capsys.readouterr().err
    out = runs / "model.txt"
    assert run_command("export", ["--stage=gpt", "--run=float", f"--out={out}"]) == 2
    assert not out.exists()
