"""RNN, LSTM and GRU layers with torch's constructor, parameter names and return conventions.

    rnn = LSTM(input_size=8, hidden_size=16, num_layers=2, bidirectional=True, batch_first=True)
    output, (h_n, c_n) = rnn(x)            # x (B, T, 8) -> output (B, T, 32), h_n (4, B, 16)
    output, (h_n, c_n) = rnn(x, lengths=lengths)   # padded batch: zeros past each length
    rnn.load_state_dict(torch_lstm.state_dict())  # or LSTM.from_torch(torch_lstm)

What this adds over a cell: stacking (layer l+1 reads layer l's outputs, with dropout between
layers in training), the reverse direction (the same equations read right to left, with their
own weights `*_reverse`, outputs concatenated), batch_first and unbatched inputs, initial
states, and padded batches (`lengths=` or a `mask=`). The state index of layer l, direction d
in h_n is l * num_directions + d, as in torch. Left out: PackedSequence inputs (pass
`lengths=` instead) and LSTM projections (`proj_size`).

`impl` picks how the loop runs: "naive" (one cell call per step, recurrence.py), "scan"
(input projections for all steps at once, then the loop under autograd), "fused" (LSTM only:
also the backward written by hand, lstm_bptt.py), "auto" (fused for the LSTM, else scan).
"""

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seq_models.recurrence import fast_direction, naive_direction

IMPLS = ("auto", "naive", "scan", "fused")
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
LengthsLike = Tensor | Sequence[int] | None


class RNNBase(nn.Module):
    """The machinery shared by RNN, LSTM and GRU, and their one constructor.

    The arguments are torch's (`torch.nn.RNNBase` less `mode`), in torch's order; a subclass
    names its cell in the class attribute `mode` (RNN picks it from `nonlinearity`). `impl` is
    ours: how the time loop runs (see the module docstring).
    """

    mode: str = ""  # which cell runs: a key of GATES

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        mode = self.mode
        if mode not in GATES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(GATES)}")
        if proj_size and mode == "LSTM":
            raise ValueError(f"LSTM: proj_size={proj_size} is not supported here; use 0")
        if proj_size:
            raise ValueError(f"{name}: proj_size exists for the LSTM only (and is not supported)")
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"{name}: input_size, hidden_size and num_layers must be positive, got "
                f"{input_size}, {hidden_size}, {num_layers}"
            )
        if not 0.0 <= dropout <= 1.0 or isinstance(dropout, bool):
            raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout={dropout} does nothing with num_layers=1: it is applied "
                "between layers, not after the last one",
                # point at the caller's line, past RNN.__init__ where there is one
                stacklevel=2 if type(self).__init__ is RNNBase.__init__ else 3,
            )
        self.proj_size = 0
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.impl = impl
        directions = 2 if bidirectional else 1
        gates = GATES[mode] * hidden_size
        kw = {"device": device, "dtype": dtype}
        self._weight_names: list[tuple[str, ...]] = []  # per (layer, direction)
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {
                    "weight_ih" + sfx: (gates, layer_in),  # (G*H, I or D*H)
                    "weight_hh" + sfx: (gates, hidden_size),  # (G*H, H)
                }
                if bias:
                    shapes.update({"bias_ih" + sfx: (gates,), "bias_hh" + sfx: (gates,)})
                for pname, shape in shapes.items():
                    self.register_parameter(pname, nn.Parameter(torch.empty(shape, **kw)))
                self._weight_names.append(tuple(shapes))
        self.reset_parameters()

    # ------------------------------------------------------------------------------------------

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {value!r}")
        if value == "fused" and self.mode != "LSTM":
            raise ValueError(f"impl='fused' exists for the LSTM only, not {self.mode}")
        self._impl = value

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """torch's initialisation: every weight and bias uniform in +-1/sqrt(H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """A no-op, for code written for torch's cuDNN-backed modules."""

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [[getattr(self, n) for n in names] for names in self._weight_names]

    def _weights(self, layer: int, direction: int) -> tuple:
        names = self._weight_names[layer * self.num_directions + direction]
        params = [getattr(self, n) for n in names]
        return (*params, None, None) if not self.bias else tuple(params)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        for key, default in (("bias", True), ("batch_first", False), ("dropout", 0.0)):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + (f", impl={self.impl!r}" if self.impl != "auto" else "")

    # ------------------------------------------------------------------------------------------
    # Checking what comes in

    def _layout(self) -> str:
        return "(batch, seq, input_size)" if self.batch_first else "(seq, batch, input_size)"

    def _check_input(self, input: Tensor) -> bool:
        """Raise ValueError naming the shapes; return whether the input is batched."""
        if not isinstance(input, Tensor):
            if type(input).__name__ == "PackedSequence":
                raise TypeError(
                    f"{type(self).__name__} takes a padded tensor and lengths=..., not a "
                    "PackedSequence; pass the padded batch and its lengths"
                )
            raise TypeError(f"{type(self).__name__} expects a tensor, got {type(input).__name__}")
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input of shape {self._layout()} with "
                f"input_size={self.input_size}, or (seq, {self.input_size}) unbatched; "
                f"got {tuple(input.shape)}"
            )
        return input.dim() == 3

    def _check_state(self, state: Tensor, what: str, batch: int, batched: bool, shape_in) -> None:
        n = self.num_layers * self.num_directions
        want = (n, batch, self.hidden_size) if batched else (n, self.hidden_size)
        if not isinstance(state, Tensor) or tuple(state.shape) != want:
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(
                f"{type(self).__name__} expects {what} of shape {want} (num_layers * "
                f"num_directions, batch, hidden_size) for input {tuple(shape_in)}, got {got}"
            )

    def _lengths(
        self, lengths: LengthsLike, mask: Tensor | None, T: int, B: int, batched: bool, device
    ) -> Tensor | None:
        """Turn `lengths` (B,) or a prefix `mask` (B, T) into a long tensor (B,), checked."""
        name = type(self).__name__
        if lengths is None and mask is None:
            return None
        if lengths is not None and mask is not None:
            raise ValueError(f"{name}: pass lengths= or mask=, not both")
        if not batched:
            raise ValueError(f"{name}: lengths= and mask= need a batched (3-D) input")
        if mask is not None:
            if tuple(mask.shape) != (B, T):
                raise ValueError(
                    f"{name} expects mask of shape (batch, seq) = {(B, T)}, got {tuple(mask.shape)}"
                )
            mask = mask.to(device=device, dtype=torch.bool)
            lengths = mask.sum(1)  # (B,)
            prefix = torch.arange(T, device=device) < lengths.unsqueeze(1)  # (B, T)
            if not torch.equal(prefix, mask):
                bad = int((prefix != mask).any(1).nonzero()[0, 0])
                raise ValueError(
                    f"{name}: mask must be True on a prefix of each row (padding at the end "
                    f"only); row {bad} is {mask[bad].int().tolist()}"
                )
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)
        if tuple(lengths.shape) != (B,):
            raise ValueError(
                f"{name} expects lengths of shape ({B},), one per sequence, got "
                f"{tuple(lengths.shape)}"
            )
        if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(
                f"{name}: lengths must lie between 1 and the padded length {T}, got "
                f"min {int(lengths.min())}, max {int(lengths.max())}"
            )
        return lengths

    # ------------------------------------------------------------------------------------------

    def forward(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        *,
        lengths: LengthsLike = None,
        mask: Tensor | None = None,
    ):
        """torch's forward, plus `lengths` (B,) or a prefix `mask` (B, T) for padded batches.

        Returns (output, h_n) for RNN and GRU, (output, (h_n, c_n)) for LSTM. With lengths,
        outputs past each sequence's end are zero and the final states are those at its last
        real step (for the reverse direction: after reading back to step 0), as torch gives
        for a packed sequence.
        """
        batched = self._check_input(input)
        if not batched:
            x = input.unsqueeze(1)  # (T, 1, I)
        elif self.batch_first:
            x = input.transpose(0, 1)  # (B, T, I) -> (T, B, I)
        else:
            x = input  # (T, B, I)
        T, B, _ = x.shape
        lengths = self._lengths(lengths, mask, T, B, batched, x.device)
        h0, c0 = self._initial_state(hx, B, batched, input)  # (L*D, B, H) each

        impl = self.impl if self.impl != "auto" else ("fused" if self.mode == "LSTM" else "scan")
        h_n: list[Tensor] = []
        c_n: list[Tensor | None] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                args = (
                    self.mode,
                    layer_input,
                    h0[k],
                    None if c0 is None else c0[k],
                    self._weights(layer, direction),
                    lengths,
                    direction == 1,
                )
                if impl == "naive":
                    out, h, c = naive_direction(*args)  # (T, B, H), (B, H), (B, H)
                else:
                    out, h, c = fast_direction(*args, fused=impl == "fused")
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = torch.cat(outputs, 2) if len(outputs) > 1 else outputs[0]  # (T,B,D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)

        output = layer_input  # (T, B, D*H)
        h_last = torch.stack(h_n)  # (L*D, B, H)
        c_last = None if c0 is None else torch.stack(c_n)  # (L*D, B, H)
        if not batched:
            output, h_last = output.squeeze(1), h_last.squeeze(1)  # (T, D*H), (L*D, H)
            c_last = None if c_last is None else c_last.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)  # (B, T, D*H)
        return (output, (h_last, c_last)) if self.mode == "LSTM" else (output, h_last)

    def _initial_state(self, hx, batch: int, batched: bool, input: Tensor):
        """hx as given, checked and batched, or zeros: (L*D, B, H) and, for the LSTM, c0."""
        n = self.num_layers * self.num_directions
        zeros = input.new_zeros(n, batch, self.hidden_size)  # (L*D, B, H)
        if self.mode == "LSTM":
            if hx is None:
                return zeros, zeros
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise ValueError("LSTM expects hx to be a tuple (h_0, c_0) or None")
            for state, what in zip(hx, ("h_0", "c_0"), strict=True):
                self._check_state(state, what, batch, batched, input.shape)
            h0, c0 = hx
            return (h0, c0) if batched else (h0.unsqueeze(1), c0.unsqueeze(1))
        if hx is None:
            return zeros, None
        self._check_state(hx, "hx", batch, batched, input.shape)
        return (hx if batched else hx.unsqueeze(1)), None

    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_torch(cls, module: nn.Module, impl: str = "auto") -> "RNNBase":
        """A copy of a torch.nn.RNN / LSTM / GRU with the same arguments, weights and mode."""
        wanted = {"RNN": ("RNN_TANH", "RNN_RELU"), "LSTM": ("LSTM",), "GRU": ("GRU",)}
        if getattr(module, "mode", None) not in wanted[cls.__name__]:
            raise ValueError(
                f"{cls.__name__}.from_torch needs a torch.nn.{cls.__name__}, "
                f"got {type(module).__name__}"
            )
        if getattr(module, "proj_size", 0):
            raise ValueError("LSTM.from_torch: proj_size > 0 is not supported here")
        p = next(module.parameters())
        kwargs = {"nonlinearity": module.nonlinearity} if cls.__name__ == "RNN" else {}
        ours = cls(
            module.input_size,
            module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
            bidirectional=module.bidirectional,
            device=p.device,
            dtype=p.dtype,
            impl=impl,
            **kwargs,
        )
        ours.load_state_dict(module.state_dict())
        return ours.train(module.training)


class RNN(RNNBase):
    """torch.nn.RNN from tensor operations: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

    nonlinearity="relu" replaces tanh with relu. The arguments are RNNBase's, with
    `nonlinearity` fourth, as in torch: RNN(input_size, hidden_size, num_layers, nonlinearity,
    bias, ...).
    """

    def __init__(self, *args, nonlinearity: str = "tanh", **kwargs) -> None:
        if len(args) > 3:  # torch's positional order puts nonlinearity after num_layers
            args, nonlinearity = args[:3] + args[4:], args[3]
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(*args, **kwargs)


class LSTM(RNNBase):
    """torch.nn.LSTM from tensor operations; forward returns (output, (h_n, c_n))."""

    mode = "LSTM"


class GRU(RNNBase):
    """torch.nn.GRU from tensor operations; forward returns (output, h_n)."""

    mode = "GRU"
