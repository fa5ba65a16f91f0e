"""Our Muon against torch.optim.Muon, its reference twin: the same steps in bf16, float32's
within bf16's rounding, checkpoints that move between the two, and the verdict's dtype."""

import copy

import pytest
import torch

from gpt.model import GPT
from gpt.muon import Muon, orthogonalize
from gpt.train import TrainConfig, make_optimizer, model_config
from shared import device as shared_device

# Wide, tall, square, and repeated shapes: the batching groups (64, 32) with (32, 64).
SHAPES = [(64, 32), (32, 64), (64, 32), (48, 48), (96, 32), (16, 80)]


def train_matrices(make, steps=4, seed=0, state=None):
    """`steps` Muon steps on random gradients from fixed starting matrices."""
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in SHAPES]
    optimizer = make(params)
    if state is not None:  # a copy: loading keeps the very tensors, which steps then change
        optimizer.load_state_dict(copy.deepcopy(state))
    grads = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=grads)
        optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust_lr_fn", [None, "match_rms_adamw"])
def test_muon_in_bf16_repeats_torch_exactly(nesterov, adjust_lr_fn):
    options = dict(lr=0.02, weight_decay=0.01, nesterov=nesterov, adjust_lr_fn=adjust_lr_fn)
    ref, _ = train_matrices(lambda ps: torch.optim.Muon(ps, **options))
    ours, _ = train_matrices(lambda ps: Muon(ps, **options, ns_dtype=torch.bfloat16))
    for r, o in zip(ref, ours, strict=True):
        torch.testing.assert_close(o, r, rtol=0, atol=0)


def test_muon_in_float32_agrees_within_bf16_rounding():
    ref, _ = train_matrices(lambda ps: torch.optim.Muon(ps, lr=0.02))
    ours, _ = train_matrices(lambda ps: Muon(ps, lr=0.02, ns_dtype=torch.float32))
    for r, o in zip(ref, ours, strict=True):
        torch.testing.assert_close(o, r, rtol=0, atol=2e-3)  # 4 steps of 0.02 x ~1.2
        assert not torch.equal(o, r)  # it really ran in another dtype


def test_orthogonalize_flattens_the_singular_values():
    """Singular values spread over two decades all come out near 1 (between 0.5 and 1.3)."""
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(3, 32, 32, dtype=torch.float64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(3, 96, 32, dtype=torch.float64, generator=g))
    spread = torch.logspace(-2, 0, 32, dtype=torch.float64)  # 0.01 .. 1
    matrices = 5.0 * u @ torch.diag(spread) @ v.mT  # (3, 32, 96)
    for m in (matrices, matrices.mT):  # wide, then tall
        s = torch.linalg.svdvals(orthogonalize(m, dtype=torch.float32).double())
        assert s.min() > 0.5 and s.max() < 1.3, (s.min(), s.max())


def test_muon_checkpoints_move_between_torch_and_ours():
    """A run saved with torch.optim.Muon (as gpt did before) resumes with ours, exactly."""
    _, torch_muon = train_matrices(lambda ps: torch.optim.Muon(ps, lr=0.02), steps=2)
    state = torch_muon.state_dict()
    ref, _ = train_matrices(lambda ps: torch.optim.Muon(ps, lr=0.02), steps=3, state=state)
    ours, _ = train_matrices(lambda ps: Muon(ps, lr=0.02), steps=3, state=state)
    for r, o in zip(ref, ours, strict=True):
        torch.testing.assert_close(o, r, rtol=0, atol=0)


def test_muon_refuses_what_it_cannot_train():
    with pytest.raises(ValueError, match="matrices only"):
        Muon([torch.nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        Muon([torch.nn.Parameter(torch.zeros(3, 3))], adjust_lr_fn="bogus")


@pytest.mark.parametrize("native", [True, False])
def test_gpt_muon_orthogonalises_in_the_verdicts_dtype(monkeypatch, native):
    """On an AVX2-only CPU (bf16 emulated) Newton-Schulz runs in float32, else in bf16."""
    verdict = shared_device.Bf16Verdict(native, "faked by the test")
    monkeypatch.setattr(shared_device, "cpu_bf16_verdict", lambda: verdict)
    cfg = TrainConfig(optimizer="muon")
    model = GPT(model_config(cfg, 65))
    optimizer = make_optimizer(model, cfg)
    assert optimizer.muon.ns_dtype == (torch.bfloat16 if native else torch.float32)
