"""nn against torch.nn: layers with copied weights, losses against torch.nn.functional,
initialiser statistics against their formulas, and the Module bookkeeping."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from micrograd import Tensor, init, nn

TOL = {"rtol": 1e-10, "atol": 1e-12}


def copy_from_torch(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def test_linear_matches_torch_on_batched_3d_input():
    torch.manual_seed(0)
    theirs = torch.nn.Linear(5, 3).double()
    ours = nn.Linear(5, 3)
    copy_from_torch(ours, theirs)
    x_np = np.random.default_rng(0).standard_normal((2, 4, 5))  # (B, T, in)
    x, xt = Tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    out, ref = ours(x), theirs(xt)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL)
    upstream = np.random.default_rng(1).standard_normal(ref.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), **TOL)


@pytest.mark.parametrize("act", ["ReLU", "Tanh", "Sigmoid", "GELU"])
def test_sequential_mlp_with_cross_entropy_matches_torch(act):
    torch.manual_seed(0)
    torch_act = torch.nn.GELU(approximate="tanh") if act == "GELU" else getattr(torch.nn, act)()
    theirs = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch_act, torch.nn.Linear(8, 4, bias=False)
    ).double()
    ours = nn.Sequential(nn.Linear(6, 8), getattr(nn, act)(), nn.Linear(8, 4, bias=False))
    assert list(ours.state_dict()) == list(theirs.state_dict())  # same names, same order
    copy_from_torch(ours, theirs)
    rng = np.random.default_rng(0)
    x_np, y = rng.standard_normal((10, 6)), rng.integers(0, 4, size=10)
    loss = nn.cross_entropy(ours(Tensor(x_np)), y)
    ref = F.cross_entropy(theirs(torch.tensor(x_np)), torch.from_numpy(y))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    loss.backward()
    ref.backward()
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), **TOL, err_msg=name)


def check_loss(ours, theirs, pred, target, *, target_is_tensor=True):
    p, pt = Tensor(pred, requires_grad=True), torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target) if target_is_tensor else torch.from_numpy(target)
    loss, ref = ours(p, target), theirs(pt, tt)
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(p.grad, pt.grad.numpy(), **TOL)


def test_cross_entropy_matches_torch_including_sequence_logits():
    rng = np.random.default_rng(0)
    check_loss(
        nn.cross_entropy,
        F.cross_entropy,
        rng.standard_normal((7, 5)),
        rng.integers(0, 5, size=7),
        target_is_tensor=False,
    )
    logits = rng.standard_normal((2, 3, 5))  # (B, T, C), as a language model produces
    targets = rng.integers(0, 5, size=(2, 3))
    check_loss(
        nn.cross_entropy,
        lambda lt, tt: F.cross_entropy(lt.reshape(-1, 5), tt.reshape(-1)),
        logits,
        targets,
        target_is_tensor=False,
    )
    check_loss(
        nn.CrossEntropyLoss(),
        F.cross_entropy,
        50 * rng.standard_normal((4, 3)),
        rng.integers(0, 3, size=4),
        target_is_tensor=False,
    )


def test_cross_entropy_rejects_bad_targets():
    logits = Tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        nn.cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        nn.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        nn.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))


def test_mse_and_bce_losses_match_torch():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    check_loss(nn.mse_loss, F.mse_loss, pred, target)
    check_loss(nn.MSELoss(), F.mse_loss, pred, target)
    probs, labels = rng.uniform(0.02, 0.98, size=(5, 2)), rng.integers(0, 2, size=(5, 2)) * 1.0
    check_loss(nn.binary_cross_entropy, F.binary_cross_entropy, probs, labels)
    check_loss(nn.BCELoss(), F.binary_cross_entropy, probs, labels)
    logits = 30 * rng.standard_normal((5, 2))  # far into the saturated range
    check_loss(
        nn.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, logits, labels
    )
    check_loss(nn.BCEWithLogitsLoss(), F.binary_cross_entropy_with_logits, logits, labels)


def test_bce_clamps_log_of_zero_like_torch():
    probs, labels = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    loss = nn.binary_cross_entropy(Tensor(probs), labels)
    ref = F.binary_cross_entropy(torch.tensor(probs), torch.tensor(labels))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)


# -------------------------------------------------------------------- initialisers


@pytest.mark.parametrize(
    ("fill", "std"),
    [
        (lambda t, r: init.xavier_uniform_(t, r), math.sqrt(2 / (300 + 400))),
        (lambda t, r: init.xavier_normal_(t, r, gain=2.0), 2 * math.sqrt(2 / (300 + 400))),
        (lambda t, r: init.kaiming_uniform_(t, r, nonlinearity="relu"), math.sqrt(2 / 300)),
        (
            lambda t, r: init.kaiming_normal_(t, r, mode="fan_out", nonlinearity="relu"),
            math.sqrt(2 / 400),
        ),
        (lambda t, r: init.kaiming_uniform_(t, r, a=math.sqrt(5)), 1 / math.sqrt(3 * 300)),
    ],
)
def test_initialisers_have_the_variance_their_formula_promises(fill, std):
    """A (400, 300) weight: fan_in 300, fan_out 400. 120,000 samples pin the std to ~0.5%."""
    w = Tensor(np.zeros((400, 300)))
    fill(w, np.random.default_rng(0))
    assert w.data.std() == pytest.approx(std, rel=0.02)
    assert abs(w.data.mean()) < 0.02 * std


def test_calculate_gain_agrees_with_torch():
    for name, param in [("relu", None), ("tanh", None), ("sigmoid", None), ("leaky_relu", 0.2)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param)
        )


def test_initialisers_are_reproducible_with_a_seeded_generator():
    a, b = (
        nn.Linear(4, 3, rng=np.random.default_rng(7)),
        nn.Linear(4, 3, rng=np.random.default_rng(7)),
    )
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert np.abs(a.weight.data).max() <= 1 / math.sqrt(4)  # torch's default bound


# -------------------------------------------------------------------- Module bookkeeping


class Block(nn.Module):
    def __init__(self):
        self.proj = nn.Linear(3, 3)
        self.heads = [nn.Linear(3, 2), nn.Linear(3, 2, bias=False)]
        self.extra = {"scale": nn.Parameter(np.ones(3))}
        self.tied = self.proj.weight  # a shared parameter is listed once
        self.note = "not a parameter"


def test_parameters_are_found_in_attributes_lists_and_dicts():
    names = [name for name, _ in Block().named_parameters()]
    assert names == [
        "proj.weight",
        "proj.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.1.weight",
        "extra.scale",
    ]
    assert len(Block().parameters()) == 6


def test_zero_grad_and_train_eval_reach_every_submodule():
    block = Block()
    out = block.heads[0](block.proj(Tensor(np.ones((2, 3))))).sum()
    out.backward()
    assert block.proj.weight.grad is not None
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())
    block.eval()
    assert not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())


def test_state_dict_round_trip_and_its_errors():
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    state = a.state_dict()
    state["proj.weight"][0, 0] = 123.0  # a copy: the model must not change
    assert a.proj.weight.data[0, 0] != 123.0

    with pytest.raises(KeyError, match=r"missing \['proj.bias'\].*unexpected \['bogus'\]"):
        b.load_state_dict({**{k: v for k, v in state.items() if k != "proj.bias"}, "bogus": 1})
    with pytest.raises(ValueError, match=r"'proj.weight' has shape \(2, 3\).*\(3, 3\)"):
        b.load_state_dict({**state, "proj.weight": np.zeros((2, 3))})


def test_float32_model_stays_float32():
    model = nn.Sequential(
        nn.Linear(4, 8, dtype=np.float32), nn.GELU(), nn.Linear(8, 2, dtype=np.float32)
    )
    x = Tensor(np.ones((3, 4)), dtype=np.float32)
    loss = nn.cross_entropy(model(x), np.array([0, 1, 1]))
    assert loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
