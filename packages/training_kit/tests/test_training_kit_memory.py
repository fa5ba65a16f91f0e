"""The memory arithmetic of the README: ZeRO's 16 bytes per parameter, split stage by stage,
and DeepSpeed's own accounting, checked against DeepSpeed's estimator functions."""

import pytest

from training_kit.memory import (
    ModelSize,
    deepspeed_accounting_bytes,
    deepspeed_estimate_bytes,
    gpt2_sizes,
    zero_paper_bytes,
)


def test_zero_stages_split_16_bytes_per_parameter_one_part_at_a_time():
    p, n = 1_000_000, 8
    assert zero_paper_bytes(p, n, 0) == 16 * p  # DDP: everything everywhere
    assert zero_paper_bytes(p, n, 1) == 4 * p + 12 * p / n  # the optimizer states split
    assert zero_paper_bytes(p, n, 2) == 2 * p + 14 * p / n  # ... and the gradients
    assert zero_paper_bytes(p, n, 3) == 16 * p / n  # ... and the weights
    assert zero_paper_bytes(p, 1, 3) == zero_paper_bytes(p, 1, 0)  # one GPU: nothing to split


def test_gpt2_124m_has_its_published_size():
    sizes = {s.name: s for s in gpt2_sizes()}
    assert sizes["GPT-2 124M"].params == 124_439_808  # HF's GPT2LMHeadModel, tied embeddings
    assert sizes["GPT-2 124M"].largest_layer == 50257 * 768  # the token embedding


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize(("gpus_per_node", "nodes"), [(1, 1), (8, 1), (8, 2)])
def test_our_deepspeed_arithmetic_equals_deepspeeds_estimators(stage, gpus_per_node, nodes):
    for size in [*gpt2_sizes(), ModelSize("odd", 1_234_567, 89_012)]:
        ours = deepspeed_accounting_bytes(size, gpus_per_node * nodes, stage)
        assert ours == deepspeed_estimate_bytes(size, gpus_per_node, nodes, stage)
