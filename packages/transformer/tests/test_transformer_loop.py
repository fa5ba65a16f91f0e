"""The loop's techniques, one at a time: schedules, accumulation, clipping, AdamW groups, bf16."""

import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transformer.classifier import ClassifierConfig, TransformerForSequenceClassification
from transformer.loop import accumulate_gradients, make_optimizer, optimizer_step, total_norm
from transformer.schedule import lr_factor, make_scheduler
from transformer.sst2 import collate_fn


def test_warmup_then_linear_decay():
    """warmup 10 of 110 steps: step s < 10 gives (s + 1) / 10, then a line from 1 to 0."""
    assert lr_factor(0, 10, 110) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110) == pytest.approx(1.0)
    assert lr_factor(10, 10, 110) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110) == pytest.approx(0.5)
    assert lr_factor(110, 10, 110) == pytest.approx(0.0)
    assert lr_factor(60, 10, 110, min_ratio=0.1) == pytest.approx(0.55)


def test_cosine_and_constant():
    """cosine: 0.5 * (1 + cos(pi * progress)); a quarter of the way down it is 0.854."""
    assert lr_factor(35, 10, 110, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(60, 10, 110, "cosine") == pytest.approx(0.5)
    assert lr_factor(110, 10, 110, "cosine") == pytest.approx(0.0)
    assert lr_factor(100, 0, 110, "constant") == 1.0


def test_scheduler_drives_the_optimizer():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = make_scheduler(opt, warmup_steps=4, total_steps=8, decay="linear")
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4]
    assert seen == pytest.approx(expected)


class _Task:
    """The two methods accumulate_gradients uses, for the classifier."""

    def count(self, batch):
        return len(batch["labels"])

    def loss(self, model, batch):
        return F.cross_entropy(
            model(batch["input_ids"], batch["padding_mask"]).float(), batch["labels"]
        )


def _tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ClassifierConfig(d_model=16, nhead=2, num_layers=1, dim_feedforward=32, dropout=0.0)
    return TransformerForSequenceClassification(cfg, vocab_size=30)


EXAMPLES = [([5, 6, 7], 1), ([8, 9], 0), ([10, 11, 12, 13, 14], 1), ([15], 0)]


@pytest.mark.parametrize("split", [[2, 2], [3, 1], [1, 1, 1, 1]])
def test_accumulation_equals_one_big_batch(split):
    """Micro-batches padded to their own lengths, weighted by their share, give the gradients of
    the whole batch of 4 (the padding masks keep padding out of every result)."""
    model = _tiny_model()
    accumulate_gradients(model, _Task(), [collate_fn(EXAMPLES)], "fp32", torch.device("cpu"))
    full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    micro, start = [], 0
    for size in split:
        micro.append(collate_fn(EXAMPLES[start : start + size]))
        start += size
    loss = accumulate_gradients(model, _Task(), micro, "fp32", torch.device("cpu"))
    assert loss > 0
    for name, grad in full.items():
        torch.testing.assert_close(
            dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5
        )


def test_clipping_limits_the_step_and_reports_the_norm():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])  # norm 5
    model = nn.Module()
    model.p = p
    opt = torch.optim.SGD([p], lr=1.0)
    assert optimizer_step(model, opt, clip=1.0) == pytest.approx(5.0)
    torch.testing.assert_close(p.detach(), torch.tensor([-0.6, -0.8, 0.0, 0.0]))  # norm 1
    assert p.grad is None  # zeroed for the next step
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert optimizer_step(model, opt, clip=0.0) == pytest.approx(5.0)  # 0: no clipping
    torch.testing.assert_close(p.detach(), torch.tensor([-3.6, -4.8, 0.0, 0.0]))


def test_adamw_leaves_biases_norms_and_embeddings_undecayed():
    model = _tiny_model()
    opt = make_optimizer(model, 1e-3, weight_decay=0.1)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert "encoder.layers.0.ff.fc_in.weight" in names
    assert "head.weight" in names
    assert not any("bias" in n or "norm" in n or "embed" in n for n in names)
    assert opt.param_groups[1]["weight_decay"] == 0.0


def test_bf16_autocast_on_cpu_is_close_to_fp32():
    model = _tiny_model()
    batch = collate_fn(EXAMPLES)
    cpu = torch.device("cpu")
    fp32 = accumulate_gradients(model, _Task(), [batch], "fp32", cpu)
    model.zero_grad()
    seen = []
    hook = model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    bf16 = accumulate_gradients(model, _Task(), [batch], "bf16", cpu)
    hook.remove()
    assert seen == [torch.bfloat16]  # the matrix products ran in bfloat16
    assert bf16 == pytest.approx(fp32, abs=0.05)
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)


def test_total_norm_is_the_norm_of_everything():
    assert total_norm([torch.tensor([3.0]), torch.tensor([[4.0]])]) == pytest.approx(5.0)


class _InterruptedTask(_Task):
    """Sends this process a SIGINT while the loop draws its third batch, as Ctrl-C would."""

    best_metric, higher_is_better = "accuracy", True

    def train_batches(self, epoch):
        for i in range(10):
            if i == 2:
                os.kill(os.getpid(), signal.SIGINT)
            yield collate_fn(EXAMPLES)

    def to_device(self, batch, device):
        return batch

    def evaluate(self, model):
        raise AssertionError("an interrupted epoch is not evaluated")


def test_ctrl_c_finishes_the_step_keeps_the_weights_and_exits_130(tmp_path, monkeypatch):
    from shared.checkpoint import read_meta
    from shared.runs import Run
    from transformer.loop import LoopConfig, fit

    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    run = Run.start("transformer", LoopConfig(), name="cut", quiet=True)
    model = _tiny_model()
    cfg = LoopConfig(epochs=2, batch_size=4, precision="fp32", device="cpu", threads=1)
    with pytest.raises(SystemExit) as stopped:
        fit(_InterruptedTask(), model, cfg, run, steps_per_epoch=10, meta={"note": "kept"})
    assert stopped.value.code == 130
    meta = read_meta(run.checkpoints / "interrupted")
    assert meta["step"] == 3 and meta["note"] == "kept"  # the step under way was finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
