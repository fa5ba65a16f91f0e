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

import argparse
import os
import statistics
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=128, help="hidden width (default 128)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per framework")
    parser.add_argument("--steps", type=int, default=100, help="steps per round")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and BLAS")
    parser.add_argument("--profile", action="store_true", help="cProfile micrograd's step")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # BLAS reads its thread count when numpy loads, so set it before the imports below
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    from micrograd import Tensor, nn, optim

    torch.set_num_threads(args.threads)
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

    def per_step(step) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return (time.perf_counter() - start) / args.steps

    first = step_ours(), step_theirs()  # same weights, same batch: the losses should agree
    for _ in range(args.steps):  # warm up caches and allocators
        step_ours()
        step_theirs()

    times_ours, times_theirs = [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            times_ours.append(per_step(step_ours))
            times_theirs.append(per_step(step_theirs))
        else:
            times_theirs.append(per_step(step_theirs))
            times_ours.append(per_step(step_ours))

    t_ours, t_theirs = statistics.median(times_ours), statistics.median(times_theirs)
    print(
        f"MLP 64-{args.hidden}-10, batch {args.batch}, {args.dtype}, {args.optimizer}, "
        f"{args.threads} thread(s), numpy {np.__version__}, torch {torch.__version__}"
    )
    print(f"first-step loss: micrograd {first[0]:.6f}  torch {first[1]:.6f}")
    print(f"{args.rounds} rounds x {args.steps} steps, median time per step:")
    print(f"  micrograd {t_ours * 1e6:8.1f} us")
    print(f"  torch     {t_theirs * 1e6:8.1f} us")
    print(f"  ratio micrograd / torch: {t_ours / t_theirs:.2f}")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20 * args.steps):
            step_ours()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
