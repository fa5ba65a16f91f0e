"""Optimisers against torch.optim: the same model, data and hyperparameters, five steps in
float64, parameters compared after every step. Our update rules copy torch's order of
operations, so the two trajectories agree to ~1e-12, far tighter than "it also converges"."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from micrograd import Tensor, nn, optim

CASES = {
    "sgd": (optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd_momentum_wd": (
        optim.SGD,
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
    ),
    "sgd_nesterov": (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    "adam": (optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    "adam_wd": (
        optim.Adam,
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1},
    ),
    "adamw": (optim.AdamW, torch.optim.AdamW, {"lr": 0.01}),
    "adamw_wd": (optim.AdamW, torch.optim.AdamW, {"lr": 0.02, "weight_decay": 0.3}),
}


def twin_models(seed=0):
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
    ).double()
    ours = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_torch_for_five_steps(name):
    ours_cls, torch_cls, kwargs = CASES[name]
    ours, theirs = twin_models()
    opt, ref = ours_cls(ours.parameters(), **kwargs), torch_cls(theirs.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    for step in range(5):
        x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, size=8)  # a new batch each step
        opt.zero_grad()
        ref.zero_grad()
        nn.cross_entropy(ours(Tensor(x)), y).backward()
        F.cross_entropy(theirs(torch.tensor(x)), torch.from_numpy(y)).backward()
        opt.step()
        ref.step()
        for (pname, p), (_, q) in zip(
            ours.named_parameters(), theirs.named_parameters(), strict=True
        ):
            np.testing.assert_allclose(
                p.data,
                q.detach().numpy(),
                rtol=1e-12,
                atol=1e-13,
                err_msg=f"{pname} after step {step + 1}",
            )


def test_zero_grad_clears_and_missing_grads_are_skipped():
    p, q = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.Adam([p, q, p], lr=0.1)  # p listed twice: updated once
    assert len(opt.params) == 2
    (p * 2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(q.data, np.ones(2))  # no grad, untouched
    assert not np.allclose(p.data, np.ones(3))
    opt.zero_grad()
    assert p.grad is None and q.grad is None


@pytest.mark.parametrize("name", ["sgd_momentum_wd", "adam_wd", "adamw"])
def test_state_dict_resumes_the_same_trajectory(name):
    """Train 3 steps, save, load into a fresh optimizer on a copy; both must continue alike."""
    ours_cls, _, kwargs = CASES[name]
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 5)), rng.integers(0, 3, size=8)) for _ in range(5)]

    def train(model, opt, steps):
        for x, y in steps:
            opt.zero_grad()
            nn.cross_entropy(model(Tensor(x)), y).backward()
            opt.step()

    model, _ = twin_models()
    opt = ours_cls(model.parameters(), **kwargs)
    train(model, opt, batches[:3])
    clone, _ = twin_models()
    clone.load_state_dict(model.state_dict())
    clone_opt = ours_cls(clone.parameters(), lr=123.0)  # hyperparameters come from the state
    clone_opt.load_state_dict(opt.state_dict())
    train(model, opt, batches[3:])
    train(clone, clone_opt, batches[3:])
    for p, q in zip(model.parameters(), clone.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_rejects_a_mismatched_state():
    a = optim.Adam([nn.Parameter(np.ones(3))])
    b = optim.Adam([nn.Parameter(np.ones(4))])
    a.params[0].grad = np.ones(3)
    a.step()
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(4,\)"):
        b.load_state_dict(a.state_dict())


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
