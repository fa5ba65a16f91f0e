"""The model: shapes, the naive attention path against the fused one, and the KV cache.

The KV cache must not change what the model computes: prefill a prompt, then feed one token at
a time, and every step's logits equal those of running the whole sequence at once.
"""

import pytest
import torch

from gpt import GPT, GPTConfig, lm_loss

V = 50


def configs():
    return {
        "gpt2": GPTConfig.gpt2(vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=32),
        "modern-gqa": GPTConfig.modern(
            vocab_size=V, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32
        ),
        "modern-mqa-untied": GPTConfig.modern(
            vocab_size=V,
            block_size=32,
            n_layer=2,
            n_head=4,
            n_kv_head=1,
            n_embd=32,
            tie_embeddings=False,
        ),
    }


@pytest.fixture(params=list(configs()))
def model(request):
    torch.manual_seed(0)
    return GPT(configs()[request.param]).eval()


def test_gpt_model_shapes_and_parameter_count():
    cfg = GPTConfig.gpt2(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16)
    model = GPT(cfg)
    assert model(torch.zeros(3, 16, dtype=torch.long)).shape == (3, 16, V)
    # per block: 2 LayerNorms (2 * 2C), q/k/v/o (4 * (C*C + C)), MLP (C*4C + 4C + 4C*C + C)
    C = 16
    block = 4 * C + 4 * (C * C + C) + (8 * C * C + 5 * C)
    expected = V * C + 16 * C + 2 * block + 2 * C  # tied lm_head is not counted twice
    assert model.num_parameters() == expected
    assert model.num_parameters(non_embedding=True) == expected - V * C - 16 * C


def test_gpt_model_swiglu_width_follows_llama():
    cfg = GPTConfig.modern(n_embd=128)
    assert cfg.mlp_hidden == 352  # 8/3 * 128 = 341.3, rounded up to a multiple of 32


def test_gpt_model_refuses_a_sequence_longer_than_its_positions():
    model = GPT(GPTConfig.gpt2(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(
        ValueError, match="Cannot forward sequence of length 9, block size is only 8"
    ):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_gpt_model_naive_and_fused_attention_agree(model):
    """Same weights, the two attention paths: same logits and same gradients."""
    naive = GPT(GPTConfig(**vars(model.config)), fused_attention=False)
    naive.load_state_dict(model.state_dict())
    idx = torch.randint(V, (2, 24))
    targets = torch.randint(V, (2, 24))
    model.train(), naive.train()
    losses = [lm_loss(m(idx), targets) for m in (model, naive)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=1e-6)
    for (name, p), q in zip(model.named_parameters(), naive.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_gpt_model_is_causal(model):
    """Changing a later token never changes an earlier position's logits."""
    idx = torch.randint(V, (1, 12))
    changed = idx.clone()
    changed[0, 8] = (changed[0, 8] + 1) % V
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_gpt_model_kv_cache_logits_equal_no_cache_logits(model):
    idx = torch.randint(V, (2, 20))
    with torch.no_grad():
        full = model(idx)  # (2, 20, V)
        cache = model.new_cache()
        steps = [model(idx[:, :8], cache)]  # prefill 8 tokens
        steps.append(model(idx[:, 8:11], cache))  # a chunk of 3 after the cache
        steps += [model(idx[:, t : t + 1], cache) for t in range(11, 20)]  # then one at a time
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_gpt_model_left_padding_changes_nothing_for_the_real_tokens(model):
    """A left-padded row, with its mask and positions, gives the logits it gives alone."""
    short = torch.randint(V, (1, 6))
    long = torch.randint(V, (1, 10))
    idx = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.ones_like(idx)
    mask[0, :4] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        batched = model(idx, positions=positions, attention_mask=mask)
        torch.testing.assert_close(batched[0, 4:], model(short)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched[1], model(long)[0], atol=1e-5, rtol=1e-5)
        # and with a cache: prefill the padded batch, then a step
        cache = model.new_cache()
        model(idx, cache, positions, mask)
        nxt = torch.randint(V, (2, 1))
        step = model(nxt, cache, positions[:, -1:] + 1, torch.cat([mask, mask[:, -1:]], 1))
        alone = model(torch.cat([short, nxt[:1]], 1))[0, -1]
    torch.testing.assert_close(step[0, 0], alone, atol=1e-5, rtol=1e-5)
