"""Time one training step of a small MLP in micrograd and in torch, on the CPU.

One step = forward, cross-entropy loss, backward, optimizer update, on a digits-sized problem:
8x8 images flattened to 64 features, 10 classes, an MLP 64 -> hidden -> ReLU -> 10, batch 64.
Both frameworks start from the same weights and see the same batch, in the same dtype, with
the same number of threads. The two run interleaved, in rounds (ours then torch, then torch
then ours, ...), and the medians over rounds are reported, so drift in machine load hits both.

    uv run python tools/bench/micrograd_vs_torch.py
    uv run python tools/bench/micrograd_vs_torch.py --dtype float64 --optimizer sgd
    uv run python tools/bench/micrograd_vs_torch.py --profile   # where micrograd's time goes
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=15, threads=1, calls=100)
    parser.add_argument("--hidden", type=int, default=128, help="hidden width")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--profile", action="store_true", help="cProfile micrograd's step")
    args = _harness.parse(parser)  # caps torch's and BLAS's threads before the imports below
    import numpy as np
    import torch

    from micrograd import Tensor, nn, optim

    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    x_np = rng.standard_normal((args.batch, 64)).astype(dtype)  # (B, 64)
    y_np = rng.integers(0, 10, size=args.batch)  # (B,)

    # micrograd model, and a torch copy with the same weights
    ours = nn.Sequential(
        nn.Linear(64, args.hidden, rng=rng, dtype=dtype),
        nn.ReLU(),
        nn.Linear(args.hidden, 10, rng=rng, dtype=dtype),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(64, args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, 10)
    ).to(getattr(torch, args.dtype))
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(ours.state_dict()[name]))

    if args.optimizer == "adam":
        opt_ours = optim.Adam(ours.parameters(), lr=1e-3)
        opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    else:
        opt_ours = optim.SGD(ours.parameters(), lr=0.05, momentum=0.9)
        opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    x_t, y_t = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step_ours() -> float:
        opt_ours.zero_grad()
        loss = nn.cross_entropy(ours(Tensor(x_np)), y_np)
        loss.backward()
        opt_ours.step()
        return loss.item()

    def step_theirs() -> float:
        opt_theirs.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(x_t), y_t)
        loss.backward()
        opt_theirs.step()
        return loss.item()

    first = step_ours(), step_theirs()  # same weights, same batch: the losses should agree
    timings = _harness.interleave(
        {"micrograd": step_ours, "torch": step_theirs},
        rounds=args.rounds,
        calls=args.calls,
        warmup=args.calls,  # warm up caches and allocators
    )
    print(
        f"MLP 64-{args.hidden}-10, batch {args.batch}, {args.dtype}, {args.optimizer}, "
        f"{args.threads} thread(s), numpy {np.__version__}, torch {torch.__version__}"
    )
    print(f"first-step loss: micrograd {first[0]:.6f}  torch {first[1]:.6f}")
    print(f"{args.rounds} rounds x {args.calls} steps, median time per step:")
    _harness.table(timings, reference="torch", unit="us", title="framework")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20 * args.calls):
            step_ours()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
