"""Muon's optimizer step: ours (one batched Newton-Schulz per shape) against torch.optim.Muon
(one matrix at a time), on the matrices `gpt train` gives Muon.

The model is the default `gpt train` model (or a wider one by option); every matrix of the
blocks gets a random gradient once, and each contender times `optimizer.step()` alone (the
gradients stay; the weights drift, which does not change the cost). Both orthogonalise in
`--dtype`: bf16 is torch's fixed choice, and ours picks bf16 only where the CPU has it natively.
Rounds are interleaved; the table gives the median step.

    uv run python tools/bench/gpt_muon.py --threads 2
    uv run python tools/bench/gpt_muon.py --threads 2 --n-embd 384 --n-layer 6 --dtype fp32
    python3 tools/bench/gpt_muon.py --device cuda --n-layer 12 --n-embd 768 --n-head 12   # GPT-2
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=7, threads=2, calls=5)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = _harness.parse(parser)
    import torch

    from gpt import GPT, GPTConfig
    from gpt.muon import Muon

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    model = GPT(GPTConfig.modern(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head))
    model.to(args.device)
    matrices = [p for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("blocks")]
    for p in matrices:
        p.grad = torch.randn_like(p)
    shapes = sorted({tuple(p.shape) for p in matrices})
    ours = Muon(matrices, lr=0.02, ns_dtype=dtype)
    contenders = {"ours (batched by shape)": ours.step}
    if dtype == torch.bfloat16:  # torch.optim.Muon always orthogonalises in bf16
        contenders["torch.optim.Muon"] = torch.optim.Muon(matrices, lr=0.02).step

    print(f"{len(matrices)} matrices of {len(shapes)} shapes {shapes}, Newton-Schulz in "
          f"{args.dtype}, on {args.device}; ms per step, median of rounds of "
          f"{args.calls} steps")  # fmt: skip
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    timings = _harness.interleave(contenders, rounds=args.rounds, calls=args.calls, sync=sync)
    reference = "torch.optim.Muon" if "torch.optim.Muon" in timings else next(iter(timings))
    _harness.table(timings, reference=reference)


if __name__ == "__main__":
    main()
