"""The layers' other promises: naive == fast, from_torch, dropout, autocast, and clear errors."""

import warnings

import pytest
import torch

from seq_models import GRU, LSTM, RNN, GRUCell, LSTMCell
from seq_models.lstm_bptt import LSTMRecurrence

T, B, I, H = 7, 3, 4, 5  # noqa: E741


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_naive_and_fast_loops_agree(cls, with_lengths):
    """The per-step teaching loop and the fast ones compute the same values and gradients."""
    torch.manual_seed(0)
    model = cls(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5]) if with_lengths else None
    results = {}
    for impl in ["naive", "scan"] + (["fused"] if cls is LSTM else []):
        model.impl = impl
        x_ = x.clone().requires_grad_()
        out, state = model(x_, lengths=lengths)
        states = list(state) if isinstance(state, tuple) else [state]
        loss = (out.sin()).sum() + sum((s.cos()).sum() for s in states)
        grads = torch.autograd.grad(loss, [x_, *model.parameters()])
        results[impl] = [out, *states, *grads]
    naive = results.pop("naive")
    for impl, tensors in results.items():
        for a, b in zip(naive, tensors, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=impl)


def test_fused_lstm_gradcheck():
    """The hand-written backward against finite differences, including an unused c output."""
    torch.manual_seed(1)
    gx = torch.randn(4, 2, 4 * 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(4 * 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LSTMRecurrence.apply, (gx, h0, c0, w_hh))
    assert torch.autograd.gradcheck(lambda *a: LSTMRecurrence.apply(*a)[0], (gx, h0, c0, w_hh))


def test_fused_lstm_under_bf16_autocast_stays_close_to_float32():
    torch.manual_seed(2)
    lstm = LSTM(16, 32, num_layers=2)
    x = torch.randn(20, 4, 16)
    ref, (h_ref, c_ref) = lstm(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = lstm(x)
    assert out.dtype == torch.bfloat16  # like torch's autocast LSTM
    assert c.dtype == torch.float32  # the cell state is kept in float32
    assert (out.float() - ref).abs().max() < 0.05
    assert (c - c_ref).abs().max() < 0.05
    out.float().sum().backward()
    assert lstm.weight_hh_l0.grad.dtype == torch.float32  # master weights get float32 grads


def test_from_torch_copies_arguments_weights_and_mode():
    theirs = torch.nn.GRU(I, H, num_layers=3, batch_first=True, dropout=0.25, bias=False)
    theirs.eval()
    ours = GRU.from_torch(theirs)
    for key in ("input_size", "hidden_size", "num_layers", "batch_first", "dropout", "bias"):
        assert getattr(ours, key) == getattr(theirs, key), key
    assert not ours.training
    for (n1, p1), (n2, p2) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    relu = RNN.from_torch(torch.nn.RNN(I, H, nonlinearity="relu"))
    assert relu.mode == "RNN_RELU"
    with pytest.raises(ValueError, match="needs a torch.nn.LSTM"):
        LSTM.from_torch(theirs)


@pytest.mark.parametrize(
    ("ours", "theirs", "args"),
    [
        (RNN, torch.nn.RNN, (I, H, 2, "relu", False, True, 0.25, True)),
        (LSTM, torch.nn.LSTM, (I, H, 2, False, True, 0.25, True, 0, "cpu", torch.float64)),
        (GRU, torch.nn.GRU, (I, H, 2, False, True, 0.25, True, 0, "cpu", torch.float64)),
    ],
)
def test_one_constructor_takes_torchs_arguments_in_torchs_order(ours, theirs, args):
    """RNNBase holds the one signature; RNN slots `nonlinearity` in fourth, as torch does."""
    a, b = ours(*args), theirs(*args)
    for key in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout"):
        assert getattr(a, key) == getattr(b, key), key
    assert (a.bidirectional, a.mode, a.proj_size) == (b.bidirectional, b.mode, b.proj_size)
    assert [(n, p.shape, p.dtype) for n, p in a.named_parameters()] == [
        (n, p.shape, p.dtype) for n, p in b.named_parameters()
    ]
    with pytest.raises(ValueError, match="proj_size"):
        ours(I, H, proj_size=2)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(3)
    lstm = LSTM(I, H, num_layers=2, dropout=0.5)
    x = torch.randn(T, B, I)
    lstm.eval()
    first, _ = lstm(x)
    again, _ = lstm(x)
    assert torch.equal(first, again)  # eval: deterministic, no dropout
    lstm.train()
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not torch.equal(a, b)  # train: a fresh dropout mask each call
    single = LSTM(I, H, num_layers=1)  # no dropout: train and eval agree
    assert torch.equal(single(x)[0], single.eval()(x)[0])


def test_dropout_on_a_single_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="does nothing with num_layers=1"):
        GRU(I, H, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU(I, H, num_layers=2, dropout=0.2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(torch.randn(T, B, I + 1)), r"input_size=4.*got \(7, 3, 5\)"),
        (lambda m: m(torch.randn(T)), r"got \(7,\)"),
        (
            lambda m: m(torch.randn(T, B, I), (torch.zeros(1, B, H), torch.zeros(2, B, H))),
            r"h_0 of shape \(2, 3, 5\)",
        ),
        (lambda m: m(torch.randn(T, B, I), torch.zeros(2, B, H)), "tuple"),
        (
            lambda m: m(torch.randn(T, B, I), (torch.zeros(2, B, H), torch.zeros(2, 1, H))),
            r"c_0 of shape \(2, 3, 5\).*got \(2, 1, 5\)",
        ),
        (lambda m: m(torch.randn(T, I), lengths=[3]), "batched"),
    ],
)
def test_wrong_shapes_are_value_errors_naming_the_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call(LSTM(I, H, num_layers=2))


def test_cell_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(batch, 4\).*got \(3, 5\)"):
        GRUCell(I, H)(torch.randn(B, 5))
    with pytest.raises(ValueError, match=r"c of shape \(3, 5\).*got \(3, 4\)"):
        LSTMCell(I, H)(torch.randn(B, I), (torch.zeros(B, H), torch.zeros(B, 4)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="fused"):
        GRU(I, H, impl="fused")
    with pytest.raises(ValueError, match="impl must be one of"):
        LSTM(I, H, impl="cudnn")
    with pytest.raises(ValueError, match="proj_size"):
        LSTM(I, H, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(I, H, nonlinearity="gelu")


def test_seq2seq_style_use_final_state_as_decoder_start():
    """What the attention stage does: encode a padded batch, start a decoder from h_n."""
    torch.manual_seed(4)
    encoder = GRU(I, H, batch_first=True, bidirectional=True)
    decoder = GRU(I, 2 * H, batch_first=True)
    src = torch.randn(B, T, I)
    enc_out, h_n = encoder(src, lengths=[7, 3, 5])  # (B, T, 2H), (2, B, H)
    h0 = torch.cat([h_n[0], h_n[1]], dim=1).unsqueeze(0)  # (1, B, 2H)
    dec_out, _ = decoder(torch.randn(B, 4, I), h0)
    assert enc_out.shape == (B, T, 2 * H) and dec_out.shape == (B, 4, 2 * H)
    dec_out.sum().backward()
    assert encoder.weight_ih_l0_reverse.grad is not None
