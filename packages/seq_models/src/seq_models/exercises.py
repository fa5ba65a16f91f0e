"""seq_models' exercises: the three cells' time steps and the loop that runs one over a sequence.

    uv run --package seq_models exercise list

The learner writes `rnn_step`, `lstm_step` and `gru_step` of `cells.py` (one time step, from the
precomputed input projection gx), then `naive_direction` of `recurrence.py`, the textbook loop
with padded batches and the reverse direction. Each check runs the learner's function and the
stage's on the same random float64 tensors, then backpropagates a random weighting of every
output through both and compares the gradients of every input tensor and weight, so a step that
is right forwards but wired wrongly backwards (a detached state, say) fails too.
"""

import torch

from seq_models.cells import gru_step, lstm_step, rnn_step
from seq_models.recurrence import naive_direction
from shared.exercises import Case, Exercise, torch_gradients
from shared.learn import exercise_command

IMPORTS = """
import torch
from torch import Tensor

from seq_models.cells import linear
"""

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}  # H-sized blocks in W_ih, W_hh


def _leaf(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """A float64 leaf that requires grad: an input or weight whose gradient the check compares."""
    data = scale * torch.randn(*shape, generator=generator, dtype=torch.float64)
    return data.requires_grad_()


def _step_args(seed: int, gates: int, B: int, H: int, bias: bool = True, cell: bool = False):
    """gx (B, G*H), h (B, H), [c (B, H)], w_hh (G*H, H), b_hh (G*H,) or None."""
    g = torch.Generator().manual_seed(seed)
    gx, h = _leaf(g, B, gates * H), _leaf(g, B, H)
    c = (_leaf(g, B, H),) if cell else ()
    w_hh = _leaf(g, gates * H, H, scale=H**-0.5)  # keeps the pre-activations near 1
    b_hh = _leaf(g, gates * H) if bias else None
    return (gx, h, *c, w_hh, b_hh)


def _rnn_cases() -> list[Case]:
    return [
        Case("gx, h (3, 6), tanh", (*_step_args(0, 1, 3, 6), "tanh"), 0),
        Case("gx, h (3, 6), relu", (*_step_args(1, 1, 3, 6), "relu"), 1),
        Case("gx, h (2, 5), tanh, b_hh None", (*_step_args(2, 1, 2, 5, bias=False), "tanh"), 2),
        Case("gx, h (1, 4), a batch of 1, relu", (*_step_args(3, 1, 1, 4), "relu"), 3),
    ]


def _lstm_cases() -> list[Case]:
    return [
        Case("gx (3, 24), h and c (3, 6)", _step_args(0, 4, 3, 6, cell=True), 0),
        Case("gx (2, 20), h, c (2, 5), b_hh None", _step_args(1, 4, 2, 5, False, cell=True), 1),
        Case("gx (1, 16), h and c (1, 4), a batch of 1", _step_args(2, 4, 1, 4, cell=True), 2),
        Case("gx (4, 4), h and c (4, 1), hidden size 1", _step_args(3, 4, 4, 1, cell=True), 3),
    ]


def _gru_cases() -> list[Case]:
    return [
        Case("gx (3, 18), h (3, 6)", _step_args(0, 3, 3, 6), 0),
        Case("gx (2, 15), h (2, 5), b_hh None", _step_args(1, 3, 2, 5, bias=False), 1),
        Case("gx (1, 12), h (1, 4), a batch of 1", _step_args(2, 3, 1, 4), 2),
    ]


def _direction_cases() -> list[Case]:
    settings = [  # mode, T, B, I, H, bias, lengths, reverse
        ("LSTM", 5, 3, 4, 6, True, None, False),
        ("GRU", 6, 4, 3, 5, True, [4, 6, 1, 3], False),
        ("LSTM", 6, 4, 3, 5, True, [4, 6, 1, 3], True),
        ("RNN_TANH", 4, 2, 3, 4, False, None, True),
        ("RNN_RELU", 1, 1, 3, 4, True, None, False),
    ]
    cases = []
    for seed, (mode, T, B, I, H, bias, lengths, reverse) in enumerate(settings):  # noqa: E741
        g, G = torch.Generator().manual_seed(seed), GATES[mode]
        x, h0 = _leaf(g, T, B, I), _leaf(g, B, H)
        c0 = _leaf(g, B, H) if mode == "LSTM" else None
        w_ih, w_hh = _leaf(g, G * H, I, scale=I**-0.5), _leaf(g, G * H, H, scale=H**-0.5)
        b_ih, b_hh = (_leaf(g, G * H), _leaf(g, G * H)) if bias else (None, None)
        lengths_ = None if lengths is None else torch.tensor(lengths)
        label = f"{mode}, x ({T}, {B}, {I}), H {H}" + ("" if bias else ", no biases")
        label += f", lengths {lengths}" if lengths else ""
        label += ", reverse" if reverse else ""
        args = (mode, x, h0, c0, (w_ih, w_hh, b_ih, b_hh), lengths_, reverse)
        cases.append(Case(label, args, seed))
    return cases


EXERCISES = [
    Exercise(
        slug="rnn_step",
        title="one step of the Elman RNN",
        reference=rnn_step,
        cases=_rnn_cases,
        gradients=torch_gradients,
        imports=IMPORTS,
        docstring="""
Elman RNN: h' = act(gx + h W_hh^T + b_hh), act tanh or relu as `nonlinearity` says.

gx (B, H): this step's input projection x W_ih^T + b_ih, computed already; h (B, H);
w_hh (H, H); b_hh (H,) or None. Returns h' (B, H). `linear(x, weight, bias)` is x W^T + b
(bias None: no bias).""",
        hint="""h' = act(gx + linear(h, w_hh, b_hh)): add the recurrent projection, then act.
torch.tanh or torch.relu; `linear` already transposes the weight and skips a None bias.""",
    ),
    Exercise(
        slug="lstm_step",
        title="one LSTM step: four gates and the cell state",
        reference=lstm_step,
        cases=_lstm_cases,
        gradients=torch_gradients,
        imports=IMPORTS,
        docstring="""
LSTM: gx (B, 4H), h and c (B, H), w_hh (4H, H), b_hh (4H,) or None -> h', c' (B, H) each.

    z = gx + h W_hh^T + b_hh                       (B, 4H), in torch's gate order i, f, g, o
    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the four (B, H) blocks of z
    c' = f * c + i * g                             the cell state: updated by addition
    h' = o * tanh(c')                              the output

Return (h', c').""",
        hint="""Split z = gx + linear(h, w_hh, b_hh) into 4 blocks in the order i, f, g, o.
z.chunk(4, dim=1) gives the four (B, H) blocks. g goes through tanh, the three gates through
sigmoid. The new cell state mixes the old one (kept by f) with the candidate g (let in by i);
h' shows tanh(c') through o. Return h' first.""",
    ),
    Exercise(
        slug="gru_step",
        title="one GRU step: reset and update gates",
        reference=gru_step,
        cases=_gru_cases,
        gradients=torch_gradients,
        imports=IMPORTS,
        docstring="""
GRU: gx (B, 3H), h (B, H), w_hh (3H, H), b_hh (3H,) or None -> h' (B, H).

gx and gh = h W_hh^T + b_hh each split into three (B, H) blocks, torch's order r, z, n:

    r = sigmoid(gx_r + gh_r)                       reset gate
    z = sigmoid(gx_z + gh_z)                       update gate
    n = tanh(gx_n + r * gh_n)                      candidate: r scales gh_n, bias included
    h' = (1 - z) * n + z * h""",
        hint="""Split gx and gh = linear(h, w_hh, b_hh) separately: r multiplies gh's n block only.
Each .chunk(3, dim=1) gives the (B, H) blocks r, z, n. The update gate z keeps the old state:
h' = (1 - z) * n + z * h (some papers swap z and 1 - z; torch does not).""",
    ),
    Exercise(
        slug="naive_direction",
        title="run a cell over a padded batch, forwards or in reverse",
        reference=naive_direction,
        cases=_direction_cases,
        gradients=torch_gradients,
        imports="""
import torch
from torch import Tensor

from seq_models.cells import linear
from seq_models.recurrence import Weights, cell_step
""",
        docstring="""
x (T, B, I) -> outputs (T, B, H), h_n (B, H), c_n (B, H) or None, one step at a time.

mode: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU"; h0 (B, H); c0 (B, H) for the LSTM, else None;
weights = (w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,) or None), G = 1, 4 or 3.
At step t: gx = linear(x[t], w_ih, b_ih), then cell_step(mode, gx, h, c, w_hh, b_hh), which
returns (h', c' or None).
reverse: steps T-1 down to 0. lengths (B,) or None: sequence b has real steps t < lengths[b];
at any other step it keeps its state and outputs zeros. outputs[t] is the output of step t
(in input order, also in reverse).""",
        hint="""Keep the new state only where t < lengths: torch.where(valid, new, old).
valid = (t < lengths).unsqueeze(1) is (B, 1), broadcasting over H. The same for c, and the
output is torch.where(valid, h_new, zeros). Collect the outputs by t (not in loop order), then
torch.stack them into (T, B, H). x.unbind(0) gives the T steps.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package seq_models exercise ...` (see shared/learn.py)."""
    return exercise_command("seq_models", EXERCISES, argv)
