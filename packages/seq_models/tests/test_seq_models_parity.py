"""Parity with torch.nn.RNN / LSTM / GRU and their cells, loaded with the same weights.

For every combination of mode, layers, directions, batch_first, bias and initial state, and in
float64 (to 1e-10) and float32 (to 1e-5): the outputs, the final states, and the gradients of
the input, the initial states and every parameter, for a random weighting of all outputs.
"""

import itertools

import pytest
import torch

from seq_models import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

T, B, I, H = 5, 3, 4, 6  # noqa: E741 (the sizes' usual letters)
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}

# (our class, torch class, extra constructor arguments)
MODES = {
    "rnn_tanh": (RNN, torch.nn.RNN, {}),
    "rnn_relu": (RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, torch.nn.LSTM, {}),
    "gru": (GRU, torch.nn.GRU, {}),
}


def _flatten(out) -> list[torch.Tensor]:
    """(output, h_n) or (output, (h_n, c_n)) as a flat list of tensors."""
    output, state = out
    return [output, *(state if isinstance(state, tuple) else (state,))]


def _grads(module, x, states, outputs, weights):
    loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
    leaves = [x, *states, *module.parameters()]
    return torch.autograd.grad(loss, leaves)


def check_parity(ours, theirs, x, hx, dtype, **forward_kwargs):
    """Run both on copies of the same leaves; compare every output and every gradient."""
    tol = TOL[dtype]

    def leaves():
        x_ = x.detach().clone().requires_grad_()
        if hx is None:
            return x_, None, []
        if isinstance(hx, tuple):
            h_ = tuple(s.detach().clone().requires_grad_() for s in hx)
            return x_, h_, list(h_)
        h_ = hx.detach().clone().requires_grad_()
        return x_, h_, [h_]

    x1, hx1, states1 = leaves()
    x2, hx2, states2 = leaves()
    out1 = _flatten(ours(x1, hx1, **forward_kwargs))
    out2 = _flatten(theirs(x2, hx2))
    assert [o.shape for o in out1] == [o.shape for o in out2]
    for a, b in zip(out1, out2, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    weights = [torch.randn_like(o) for o in out1]
    g1 = _grads(ours, x1, states1, out1, weights)
    g2 = _grads(theirs, x2, states2, out2, weights)
    names = ["input", *[f"state{i}" for i in range(len(states1))]]
    names += [n for n, _ in ours.named_parameters()]
    for name, a, b in zip(names, g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m, n=name: f"{n}: {m}")


GRID = list(itertools.product(MODES, [1, 2], [False, True], [False, True], [True, False]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("initial_state", [False, True], ids=["h0=zeros", "h0=given"])
@pytest.mark.parametrize(
    "mode, num_layers, bidirectional, batch_first, bias",
    GRID,
    ids=[
        f"{m}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tf'}-{'b' if s else 'nob'}"
        for m, n, b, f, s in GRID
    ],
)
def test_layer_matches_torch(
    mode, num_layers, bidirectional, batch_first, bias, initial_state, dtype
):
    torch.manual_seed(0)
    ours_cls, torch_cls, extra = MODES[mode]
    theirs = torch_cls(
        I, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
        bidirectional=bidirectional, dtype=dtype, **extra,
    )  # fmt: skip
    ours = ours_cls.from_torch(theirs)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=dtype)
    hx = None
    if initial_state:
        h0 = torch.randn(num_layers * (2 if bidirectional else 1), B, H, dtype=dtype)
        hx = (h0, torch.randn_like(h0)) if mode == "lstm" else h0
    check_parity(ours, theirs, x, hx, dtype)


@pytest.mark.parametrize("impl", ["naive", "scan"])
@pytest.mark.parametrize("mode", list(MODES))
def test_other_implementations_match_torch(mode, impl):
    """The default is fused for the LSTM and scan otherwise; the others agree with torch too."""
    torch.manual_seed(1)
    ours_cls, torch_cls, extra = MODES[mode]
    theirs = torch_cls(I, H, num_layers=2, bidirectional=True, dtype=torch.float64, **extra)
    ours = ours_cls.from_torch(theirs, impl=impl)
    h0 = torch.randn(4, B, H, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if mode == "lstm" else h0
    check_parity(ours, theirs, torch.randn(T, B, I, dtype=torch.float64), hx, torch.float64)


@pytest.mark.parametrize("mode", list(MODES))
def test_unbatched_input_matches_torch(mode):
    torch.manual_seed(2)
    ours_cls, torch_cls, extra = MODES[mode]
    theirs = torch_cls(I, H, num_layers=2, bidirectional=True, dtype=torch.float64, **extra)
    ours = ours_cls.from_torch(theirs)
    x = torch.randn(T, I, dtype=torch.float64)
    h0 = torch.randn(4, H, dtype=torch.float64)
    check_parity(
        ours, theirs, x, (h0, torch.randn_like(h0)) if mode == "lstm" else h0, torch.float64
    )
    check_parity(ours, theirs, x, None, torch.float64)


CELLS = {
    "rnn_tanh": (RNNCell, torch.nn.RNNCell, {}),
    "rnn_relu": (RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (LSTMCell, torch.nn.LSTMCell, {}),
    "gru": (GRUCell, torch.nn.GRUCell, {}),
}


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("mode", list(CELLS))
def test_cell_matches_torch(mode, with_state, bias, batched):
    torch.manual_seed(3)
    ours_cls, torch_cls, extra = CELLS[mode]
    theirs = torch_cls(I, H, bias=bias, dtype=torch.float64, **extra)
    ours = ours_cls.from_torch(theirs)
    x = torch.randn((B, I) if batched else (I,), dtype=torch.float64, requires_grad=True)
    leaves = [x]
    hx = None
    if with_state:
        h = torch.randn((B, H) if batched else (H,), dtype=torch.float64, requires_grad=True)
        hx = (h, torch.randn_like(h).requires_grad_()) if mode == "lstm" else h
        leaves += list(hx) if mode == "lstm" else [hx]
    out1, out2 = ours(x, hx), theirs(x, hx)
    out1 = list(out1) if mode == "lstm" else [out1]
    out2 = list(out2) if mode == "lstm" else [out2]
    weights = [torch.randn_like(o) for o in out1]
    g1 = torch.autograd.grad(
        sum((o * w).sum() for o, w in zip(out1, weights, strict=True)),
        leaves + list(ours.parameters()),
    )
    g2 = torch.autograd.grad(
        sum((o * w).sum() for o, w in zip(out2, weights, strict=True)),
        leaves + list(theirs.parameters()),
    )
    for a, b in zip(out1 + list(g1), out2 + list(g2), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_parameter_names_and_order_match_torch():
    theirs = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    ours = LSTM(I, H, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    ours.load_state_dict(theirs.state_dict())  # the torch module's own state dict loads
    assert "weight_hh_l1_reverse" in dict(ours.named_parameters())


def test_default_initialisation_is_torch_s():
    """Every parameter uniform in +-1/sqrt(H), like torch's."""
    torch.manual_seed(0)
    ours = GRU(I, 100, num_layers=2)
    for name, p in ours.named_parameters():
        assert p.abs().max() <= 0.1, name
        assert p.std() > 0.05, name  # uniform(-0.1, 0.1) has std 0.058
