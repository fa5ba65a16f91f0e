"""Time forward + backward of seq_models.LSTM against torch.nn.LSTM's fused kernel, on the CPU.

One call = the whole LSTM over a (T, B, I) batch from zero states, then backward from the sum
of its outputs. Both models hold the same weights, see the same input, in the same precision
and with the same number of threads. They run interleaved in rounds (ours then torch, then
torch then ours, ...) and the medians over rounds are reported with their ratio, so drift in
machine load hits both. `--impls` adds our slower loops (scan: autograd over the recurrence;
naive: one cell call per step) to show what each speed-up is worth.

    uv run python tools/bench/rnn_vs_torch.py                    # 2 x 512, B 32, T 128, bf16
    uv run python tools/bench/rnn_vs_torch.py --precision fp32 --impls fused,scan,naive
    uv run python tools/bench/rnn_vs_torch.py --threads 2
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=7, threads=1)
    parser.add_argument("--input-size", type=int, default=64, help="I")
    parser.add_argument("--hidden", type=int, default=512, help="H")
    parser.add_argument("--layers", type=int, default=2, help="stacked layers")
    parser.add_argument("--batch", type=int, default=32, help="B")
    parser.add_argument("--seq", type=int, default=128, help="T")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--impls", default="fused", help="ours to time: fused,scan,naive")
    args = _harness.parse(parser)
    import torch

    from seq_models import LSTM

    torch.manual_seed(0)
    theirs = torch.nn.LSTM(args.input_size, args.hidden, args.layers)
    contenders = {"torch": theirs}
    for impl in args.impls.split(","):
        contenders[f"ours ({impl})"] = LSTM.from_torch(theirs, impl=impl)
    x = torch.randn(args.seq, args.batch, args.input_size)

    def step(model) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out, _ = model(x)
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)

    # one warm-up call each (the allocator, oneDNN primitives, lazy imports), then the rounds
    timings = _harness.interleave(
        {name: lambda m=model: step(m) for name, model in contenders.items()}, rounds=args.rounds
    )
    print(
        f"LSTM {args.layers} x {args.hidden}, input {args.input_size}, batch {args.batch} x "
        f"{args.seq} steps, {args.precision}, {args.threads} thread(s), forward + backward, "
        f"median of {args.rounds} interleaved rounds"
    )
    chars = args.batch * args.seq  # a character per sequence and step
    _harness.table(
        timings, "torch", columns={"chars/s": lambda name, t: f"{chars / t.median:,.0f}"}
    )


if __name__ == "__main__":
    main()
