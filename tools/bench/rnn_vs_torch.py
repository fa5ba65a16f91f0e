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

import argparse
import statistics
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=64, help="I (default 64)")
    parser.add_argument("--hidden", type=int, default=512, help="H (default 512)")
    parser.add_argument("--layers", type=int, default=2, help="stacked layers (default 2)")
    parser.add_argument("--batch", type=int, default=32, help="B (default 32)")
    parser.add_argument("--seq", type=int, default=128, help="T (default 128)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--impls", default="fused", help="ours to time: fused,scan,naive")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    from seq_models import LSTM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(args.input_size, args.hidden, args.layers)
    contenders = {"torch": theirs}
    for impl in args.impls.split(","):
        contenders[f"ours ({impl})"] = LSTM.from_torch(theirs, impl=impl)
    x = torch.randn(args.seq, args.batch, args.input_size)

    def step(model) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out, _ = model(x)
        out.float().sum().backward()
        elapsed = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        return elapsed

    for model in contenders.values():  # warm up: allocator, oneDNN primitives, lazy imports
        step(model)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(step(contenders[name]))

    print(
        f"LSTM {args.layers} x {args.hidden}, input {args.input_size}, batch {args.batch} x "
        f"{args.seq} steps, {args.precision}, {args.threads} thread(s), forward + backward, "
        f"median of {args.rounds} interleaved rounds"
    )
    base = statistics.median(times["torch"])
    for name, ts in times.items():
        med = statistics.median(ts)
        chars = args.batch * args.seq / med
        print(
            f"  {name:14s} {med * 1000:8.1f} ms  ({chars:8,.0f} chars/s)  {med / base:5.2f}x torch"
        )


if __name__ == "__main__":
    main()
