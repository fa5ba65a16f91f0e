"""LoRA against its reference twin, peft's LoRA on transformers' GPT-2, and its own arithmetic:
the same logits and adapter gradients from the same weights; an exact merge; only adapters train."""

import pytest
import torch

from gpt import GPT, GPTConfig
from gpt.chat.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    lora_layers,
    lora_state_dict,
    merge_lora,
    plain_state_dict,
    unmerge_lora,
)
from gpt.hf import from_hf

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
transformers.logging.set_verbosity_error()

# GPT-2's modules and ours: attn.c_proj = o_proj, mlp.c_fc = fc_in, mlp.c_proj = fc_out
# (c_attn, the fused q/k/v, is one matrix in GPT-2 and three in ours: not the same adapter).
OURS_FOR = {"attn.c_proj": "attn.o_proj", "mlp.c_fc": "mlp.fc_in", "mlp.c_proj": "mlp.fc_out"}


def tiny_gpt2():
    cfg = transformers.GPT2Config(vocab_size=61, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                  bos_token_id=None, eos_token_id=None)  # fmt: skip
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def test_peft_and_ours_give_the_same_logits_and_adapter_gradients():
    hf = tiny_gpt2()
    ours = from_hf(hf).eval()
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_proj", "c_fc"],
                           lora_dropout=0.0, fan_in_fan_out=True)  # fmt: skip
    hf_lora = peft.get_peft_model(hf, lora)
    apply_lora(ours, LoRAConfig(rank=4, alpha=8, targets=["o_proj", "fc_in", "fc_out"]))
    torch.manual_seed(1)
    ours_layers = dict(ours.named_modules())
    pairs = []
    for name, module in hf_lora.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            layer = int(name.split(".h.")[1].split(".")[0])
            part = name.split(f".h.{layer}.")[1]
            mine = ours_layers[f"blocks.{layer}.{OURS_FOR[part]}"]
            with torch.no_grad():  # the same, non-zero, adapters on both sides
                module.lora_A["default"].weight.normal_(0, 0.1)
                module.lora_B["default"].weight.normal_(0, 0.1)
                mine.lora_A.copy_(module.lora_A["default"].weight)
                mine.lora_B.copy_(module.lora_B["default"].weight)
            pairs.append((module, mine))
    assert len(pairs) == 6  # 2 layers x (attn.c_proj, mlp.c_fc, mlp.c_proj)
    idx = torch.randint(0, 61, (3, 12))
    theirs_logits = hf_lora(idx).logits
    ours_logits = ours(idx)
    torch.testing.assert_close(ours_logits, theirs_logits, rtol=1e-5, atol=1e-5)
    theirs_logits.square().mean().backward()
    ours_logits.square().mean().backward()
    for module, mine in pairs:
        torch.testing.assert_close(mine.lora_A.grad, module.lora_A["default"].weight.grad,
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
        torch.testing.assert_close(mine.lora_B.grad, module.lora_B["default"].weight.grad,
                                   rtol=1e-4, atol=1e-6)  # fmt: skip


def small_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.modern(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32))


def test_a_fresh_adapter_changes_nothing_and_only_adapters_train():
    model = small_model()
    idx = torch.randint(0, 50, (2, 10))
    before = model(idx)
    wrapped = apply_lora(model, LoRAConfig(rank=4))
    assert len(wrapped) == 2 * 7  # q, k, v, o and the SwiGLU's gate, up, down, per block
    torch.testing.assert_close(model(idx), before)  # B starts at zero
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A" in n or ".lora_B" in n for n in trainable)
    assert set(lora_state_dict(model)) == trainable
    n_lora = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert n_lora < 0.5 * sum(p.numel() for p in model.parameters())


def test_merging_is_exact_and_unmerging_restores_the_weights():
    model = small_model()
    apply_lora(model, LoRAConfig(rank=4, alpha=8, targets=["q_proj", "down"]))
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.normal_(0, 0.2)
    weights = {n: p.clone() for n, p in model.named_parameters() if n.endswith("base.weight")}
    idx = torch.randint(0, 50, (2, 10))
    adapted = model(idx)
    merge_lora(model)
    torch.testing.assert_close(model(idx), adapted, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    for n, p in model.named_parameters():
        if n in weights:
            torch.testing.assert_close(p, weights[n], rtol=0, atol=1e-6)
    plain = GPT(model.config)  # the merged weights under a plain model's names
    plain.load_state_dict(plain_state_dict(model))
    torch.testing.assert_close(plain(idx), adapted, rtol=1e-5, atol=1e-5)


def test_lora_linear_is_w_plus_scaled_b_a():
    base = torch.nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6)
    expected = x @ (base.weight + 3.0 * layer.lora_B @ layer.lora_A).T + base.bias
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_targets_that_match_nothing_are_an_error():
    with pytest.raises(ValueError, match="no nn.Linear layer matches"):
        apply_lora(small_model(), LoRAConfig(targets=["c_attn"]))
