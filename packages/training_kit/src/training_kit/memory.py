"""How much memory each GPU needs for a model's states under DDP and ZeRO 1-3: the arithmetic.

Mixed-precision Adam keeps, per parameter (the ZeRO paper's accounting, Rajbhandari et al.
2020): 2 bytes of bf16/fp16 weights, 2 bytes of gradients, and 12 bytes of optimizer state
(an fp32 master copy, Adam's two moments): 16 bytes in all. With N GPUs:

    DDP     2 + 2 + 12          = 16 P          every GPU holds everything
    ZeRO-1  2 + 2 + 12 / N                      the optimizer states split
    ZeRO-2  2 + (2 + 12) / N                    ... and the gradients
    ZeRO-3  (2 + 2 + 12) / N    = 16 P / N      ... and the weights (FSDP full shard: the same)

Activations, temporary buffers and fragmentation come on top, and depend on batch and
sequence length; these are the model *states* only. DeepSpeed's own estimators
(`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`) count
18 bytes per parameter in the split part instead of 14 or 16: they add an fp32 copy of the
gradients (4 bytes) and count the 16-bit gradients there (2), beside the fp32 weights and
Adam's moments (12). ZeRO-2 keeps the 16-bit weights whole (2 P); ZeRO-3 the largest layer
gathered whole in fp32 (4 x its parameters):

    DeepSpeed ZeRO-2    2 P + 18 P / N
    DeepSpeed ZeRO-3    4 L + 18 P / N          (L: the largest layer's parameters)

`deepspeed_accounting_bytes` is that arithmetic written out, and a test checks it against
DeepSpeed's functions; `model_table` prints both accountings side by side.

    uv run --package training_kit python -m training_kit.memory     # the README's table
"""

import functools
from dataclasses import dataclass

GIB = 2**30


@dataclass(frozen=True)
class ModelSize:
    name: str
    params: int  # every parameter (a tied matrix once)
    largest_layer: int  # the largest single weight: ZeRO-3 gathers one layer at a time


def zero_paper_bytes(params: int, gpus: int, stage: int) -> float:
    """Bytes of model states per GPU at ZeRO `stage` (0: DDP) on `gpus` GPUs, 16 bytes/param."""
    weights, grads, optim = 2.0 * params, 2.0 * params, 12.0 * params
    if stage >= 1:
        optim /= gpus
    if stage >= 2:
        grads /= gpus
    if stage >= 3:
        weights /= gpus
    return weights + grads + optim


def deepspeed_accounting_bytes(size: ModelSize, gpus: int, stage: int) -> int:
    """DeepSpeed's accounting of GPU bytes for model states at ZeRO-2 or 3, written out."""
    if stage == 3:
        return 4 * size.largest_layer + int(18 * size.params / gpus)
    if stage == 2:
        return 2 * size.params + int(18 * size.params / gpus)
    raise ValueError("DeepSpeed estimates ZeRO-2 and ZeRO-3 only")


def deepspeed_estimate_bytes(size: ModelSize, gpus_per_node: int, nodes: int, stage: int) -> int:
    """DeepSpeed's own estimate of GPU bytes (no offload), from its estimator functions."""
    import os

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    if stage == 3:
        _, gpu, _ = estimate_zero3_model_states_mem_needs(
            size.params, size.largest_layer, gpus_per_node, nodes, cpu_offload=False,
            cpu_offload_params=False, zero_init=True, additional_buffer_factor=1.0,
        )  # fmt: skip
        return int(gpu)
    _, gpu = estimate_zero2_model_states_mem_needs(
        size.params, gpus_per_node, nodes, cpu_offload=False, additional_buffer_factor=1.0
    )
    return int(gpu)


@functools.cache
def gpt2_sizes() -> tuple[ModelSize, ...]:
    """GPT-2 124M and 350M, and a 1.3B of the same family (GPT-3 XL's shape), counted on our
    `GPT` built on the meta device (no memory)."""
    import torch

    from gpt.model import GPT, GPTConfig

    shapes = [("GPT-2 124M", 12, 768, 12), ("GPT-2 350M", 24, 1024, 16), ("1.3B", 24, 2048, 16)]
    sizes = []
    for name, layers, width, heads in shapes:
        cfg = GPTConfig.gpt2(vocab_size=50257, block_size=1024, n_layer=layers, n_head=heads,
                             n_embd=width)  # fmt: skip
        with torch.device("meta"):
            model = GPT(cfg)
        params = sum(p.numel() for p in model.parameters())
        largest = max(p.numel() for p in model.parameters())
        sizes.append(ModelSize(name, params, largest))
    return tuple(sizes)


def model_table(gpus_per_node: int = 8, nodes: int = 1) -> str:
    """A markdown table: GiB per GPU for each model and stage, ours and DeepSpeed's."""
    gpus = gpus_per_node * nodes
    header = "| DDP | ZeRO-1 | ZeRO-2 | ZeRO-3 | DeepSpeed's ZeRO-2 / ZeRO-3 |"
    lines = [f"| model ({gpus} GPUs) | params {header}", "|---|---:|---:|---:|---:|---:|---:|"]
    for size in gpt2_sizes():
        ours = [zero_paper_bytes(size.params, gpus, s) / GIB for s in range(4)]
        ds2 = deepspeed_estimate_bytes(size, gpus_per_node, nodes, 2) / GIB
        ds3 = deepspeed_estimate_bytes(size, gpus_per_node, nodes, 3) / GIB
        cells = " | ".join(f"{x:.2f}" for x in ours)
        lines.append(f"| {size.name} | {size.params / 1e6:,.0f}M | {cells} | "
                     f"{ds2:.2f} / {ds3:.2f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    for gpus_per_node, nodes in ((8, 1), (8, 2)):
        print(model_table(gpus_per_node, nodes), end="\n\n")
