"""The recipe's techniques, one at a time: schedules, accumulation of padded sentences through
shared.fit, AdamW groups, bf16, the selection slice."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shared.device import autocast
from shared.fit import FitSettings, FitState, fit
from shared.runs import Run
from shared.training import RunOptions
from transformer.classifier import ClassifierConfig, TransformerForSequenceClassification
from transformer.loop import held_out, make_optimizer, total_norm
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
    """A shared.fit.Task for the classifier that hands out the given micro-batches in turn."""

    def __init__(self, batches=()):
        self.batches = list(batches)

    def train_batch(self, generator):
        return self.batches.pop(0)

    def count(self, batch):
        return len(batch["labels"])

    def loss(self, model, batch):
        return F.cross_entropy(
            model(batch["input_ids"], batch["padding_mask"]).float(), batch["labels"]
        )

    def evaluate(self, model, precision_ctx):
        return {}


def _tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ClassifierConfig(d_model=16, nhead=2, num_layers=1, dim_feedforward=32, dropout=0.0)
    return TransformerForSequenceClassification(cfg, vocab_size=30)


EXAMPLES = [([5, 6, 7], 1), ([8, 9], 0), ([10, 11, 12, 13, 14], 1), ([15], 0)]


def _gradients_of_one_step(model, micro_batches, tmp_path) -> dict:
    """The gradients shared.fit accumulates over `micro_batches` in one optimizer step (with a
    learning rate of 0, so the step leaves the weights alone)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    optimizer.param_groups[0]["peak_lr"] = 0.0
    (tmp_path / "run").mkdir(exist_ok=True)
    settings = FitSettings(
        schedule=lambda *_: 1.0, grad_clip=0.0, accumulation_steps=len(micro_batches)
    )
    fit(_Task(micro_batches), model, optimizer, RunOptions(max_steps=1), settings,
        Run(tmp_path / "run"), FitState(), torch.device("cpu"), "fp32")  # fmt: skip
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("split", [[2, 2], [3, 1], [1, 1, 1, 1]])
def test_accumulation_equals_one_big_batch(split, tmp_path):
    """Micro-batches padded to their own lengths, weighted by their share, give the gradients of
    the whole batch of 4 (the padding masks keep padding out of every result)."""
    full = _gradients_of_one_step(_tiny_model(), [collate_fn(EXAMPLES)], tmp_path)
    micro, start = [], 0
    for size in split:
        micro.append(collate_fn(EXAMPLES[start : start + size]))
        start += size
    accumulated = _gradients_of_one_step(_tiny_model(), micro, tmp_path)
    assert accumulated.keys() == full.keys()
    for name, grad in full.items():
        torch.testing.assert_close(accumulated[name], grad, atol=1e-6, rtol=1e-5)


def test_adamw_leaves_biases_norms_and_embeddings_undecayed():
    model = _tiny_model()
    opt = make_optimizer(model, 1e-3, weight_decay=0.1)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert "encoder.layers.0.ff.fc_in.weight" in names
    assert "head.weight" in names
    assert not any("bias" in n or "norm" in n or "embed" in n for n in names)
    assert opt.param_groups[1]["weight_decay"] == 0.0
    assert all(g["peak_lr"] == 1e-3 for g in opt.param_groups)  # what shared.fit schedules


def test_bf16_autocast_on_cpu_is_close_to_fp32():
    model = _tiny_model()
    batch = collate_fn(EXAMPLES)
    cpu = torch.device("cpu")
    fp32 = float(_Task().loss(model, batch).detach())
    seen = []
    hook = model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with autocast(cpu, "bf16"):
        bf16 = _Task().loss(model, batch)
    hook.remove()
    bf16.backward()
    assert seen == [torch.bfloat16]  # the matrix products ran in bfloat16
    assert float(bf16.detach()) == pytest.approx(fp32, abs=0.05)
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)


def test_total_norm_is_the_norm_of_everything():
    assert total_norm([torch.tensor([3.0]), torch.tensor([[4.0]])]) == pytest.approx(5.0)


def test_the_selection_slice_is_held_out_the_same_way_every_time():
    train, select = held_out(100, 0.05, seed=0)
    assert len(select) == 5 and not set(train) & set(select) and len(train) + 5 == 100
    assert held_out(100, 0.05, seed=0) == (train, select)  # a resumed run trains on the same
    assert held_out(100, 0.05, seed=1) != (train, select)
    assert held_out(100, 0.0, seed=0) == (list(range(100)), [])  # 0: no selection slice
