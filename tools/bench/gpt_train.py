"""Training throughput of gpt.GPT: tokens/s and model FLOPs utilisation against a measured peak.

The peak is measured here, not taken from a datasheet: the best FLOP/s of square matmuls
(float32 and bfloat16) on this machine with the same thread count. MFU is then

    model FLOPs per token = 6 * (N + V * C) + 12 * n_layer * n_embd * T
        N: the non-embedding parameters, V * C: the output layer (its matmul is done whether or not
        it is tied to the input embedding, whose lookup costs nothing); 6 for the forward and
        backward matmuls, the last term for the attention scores (PaLM, Appendix B; nanoGPT)
    MFU = tokens/s * model FLOPs per token / peak FLOP/s

"compiled" contenders compile the forward and the loss as one function, so inductor can fuse the
cross-entropy into the output layer's epilogue instead of writing (B, T, V) float32 logits; one
"compiled model" contender compiles the model alone (the loss eager), to show what that is worth.

The reference twin is transformers' GPT2LMHeadModel built from our GPT-2 model's weights
(`gpt.hf.to_hf`), trained the same way; the last column is each contender's time over its.
Contenders run in rounds, interleaved (A, B, C, then C, B, A, ...), and each reports its median
round, so drift in machine load hits all of them alike.

    uv run python tools/bench/gpt_train.py                   # the default `gpt train` model, CPU
    uv run python tools/bench/gpt_train.py --threads 1       # on a busy machine
    uv run python tools/bench/gpt_train.py --gpu             # GPT-2 124M shape on a CUDA GPU
    uv run python tools/bench/gpt_train.py --gpu --compile   # ... and torch.compile'd twins
"""

from __future__ import annotations

import time

import _harness


def matmul_peak(torch, dtype, device) -> float:
    """Best FLOP/s of an (n x n) @ (n x n) product over a few sizes (a GPU needs big ones)."""
    sizes = (1024, 2048, 4096, 8192) if device.type == "cuda" else (256, 512, 1024, 2048)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        reps = max(2, int(2e10 / (2 * n**3))) if device.type == "cuda" else max(2, int(2e9 / n**3))
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


REFERENCE = "transformers GPT-2 bf16"


class ReferenceLogits:
    """transformers' model called like ours: token ids in, logits out."""

    def __init__(self, hf_model) -> None:
        self.hf_model = hf_model

    def __call__(self, idx):
        return self.hf_model(input_ids=idx).logits

    def parameters(self):
        return self.hf_model.parameters()


def main() -> None:
    parser = _harness.parser(__doc__, rounds=5, threads=0, calls=5)
    parser.add_argument("--gpu", action="store_true", help="GPT-2 124M (12x768, T=1024) on CUDA")
    parser.add_argument("--batch", type=int, default=0, help="sequences/step (0: 64 CPU, 16 GPU)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile'd contenders")
    args = _harness.parse(parser)
    import torch

    from gpt import GPT, GPTConfig, lm_loss
    from gpt.hf import to_hf

    device = torch.device("cuda" if args.gpu else "cpu")
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu: no CUDA device visible")
    if args.gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        base = dict(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)
        batch = args.batch or 16
        contenders = {
            "gpt2-124M bf16": (GPTConfig.gpt2(**base), "bf16"),
            "modern-124M bf16": (GPTConfig.modern(**base), "bf16"),
        }
    else:
        base = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
        batch = args.batch or 64
        contenders = {
            "modern fp32 naive": (GPTConfig.modern(**base), "fp32"),
            "modern bf16 naive": (GPTConfig.modern(**base), "bf16"),
            "modern bf16 fused": (GPTConfig.modern(**base), "bf16"),
            "gpt2 bf16 naive": (GPTConfig.gpt2(**base), "bf16"),
        }
    reference_cfg, _ = contenders["gpt2-124M bf16" if args.gpu else "gpt2 bf16 naive"]
    contenders[REFERENCE] = (reference_cfg, "bf16")
    if args.compile:
        for name in [n for n in contenders if n != REFERENCE and "fp32" not in n]:
            contenders[name + " compiled"] = contenders[name]
        first = next(n for n in contenders if "fp32" not in n)
        contenders[first + " compiled model"] = contenders[first]

    peaks = {
        p: matmul_peak(torch, dt, device)
        for p, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    print(
        f"{device}, {torch.get_num_threads()} threads; measured matmul peak: "
        f"fp32 {peaks['fp32'] / 1e9:,.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:,.0f} GFLOP/s"
    )
    steps, flops, precisions = {}, {}, {}
    for name, (cfg, precision) in contenders.items():
        torch.manual_seed(0)
        model = GPT(cfg, fused_attention="naive" not in name).to(device)  # a run-time choice
        # non_embedding leaves out the tied output layer with the embedding; an untied one is in
        output_layer = cfg.vocab_size * cfg.n_embd if cfg.tie_embeddings else 0
        flops[name] = (
            6 * (model.num_parameters(non_embedding=True) + output_layer)
            + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
        )
        if name == REFERENCE:
            hf_model = to_hf(model)
            print(f"reference attention: {hf_model.config._attn_implementation}")
            model = ReferenceLogits(hf_model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=args.gpu)

        def forward_loss(x, y, model=model):
            return lm_loss(model(x), y)

        if name.endswith("compiled"):
            forward_loss = torch.compile(forward_loss)
        elif name.endswith("compiled model"):
            compiled_model = torch.compile(model)

            def forward_loss(x, y, compiled_model=compiled_model):
                return lm_loss(compiled_model(x), y)

        x = torch.randint(cfg.vocab_size, (batch, cfg.block_size), device=device)
        y = torch.randint(cfg.vocab_size, (batch, cfg.block_size), device=device)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32

        def step(model=model, forward_loss=forward_loss, opt=opt, x=x, y=y, dtype=dtype,
                 precision=precision):  # fmt: skip
            with torch.autocast(device.type, dtype=dtype, enabled=precision == "bf16"):
                loss = forward_loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        steps[name], precisions[name] = step, precision

    # warm-up: one step each, three where torch.compile has to compile first
    timings = _harness.interleave(
        steps,
        rounds=args.rounds,
        calls=args.calls,
        warmup=3 if args.compile else 1,
        sync=torch.cuda.synchronize if device.type == "cuda" else None,
    )
    tokens = batch * next(iter(contenders.values()))[0].block_size
    print(
        f"{batch} x {tokens // batch} tokens per step; "
        f"median of {args.rounds} rounds of {args.calls} steps"
    )

    # tokens per CPU-second: on a busy machine, with one thread, close to what an idle one
    # would give in wall time (the process is charged only for the time it ran)
    def mfu(name: str, t: _harness.Timing) -> str:
        return f"{tokens / t.median * flops[name] / peaks[precisions[name]]:.1%}"

    _harness.table(
        timings,
        REFERENCE,
        columns={
            "tokens/s": lambda name, t: f"{tokens / t.median:,.0f}",
            "MFU": mfu,
            "tok/CPU-s": lambda name, t: f"{tokens / t.cpu_median:,.0f}",
        },
    )


if __name__ == "__main__":
    main()
