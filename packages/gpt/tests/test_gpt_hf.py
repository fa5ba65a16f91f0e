"""Parity with transformers: tiny random GPT-2 and Llama models built offline, no downloads.

For each configuration: copy transformers' weights into ours (`from_hf`) and compare logits in
float32 to 1e-5; greedy generation with `generate(do_sample=False)` must give the same tokens;
and ours -> transformers -> ours (`to_hf`, then `from_hf`) must leave every tensor unchanged.
"""

import pytest
import torch

from gpt import GPT, GPTConfig, generate
from gpt.hf import from_hf, to_hf
from shared.errors import UsageError

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 97


def tiny_gpt2(tied: bool = True, activation: str = "gelu_new"):
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        activation_function=activation,
        tie_word_embeddings=tied,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def tiny_llama(n_kv_heads: int = 2, tied: bool = False, bias: bool = False):
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=64,
        rope_theta=5000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
        attention_bias=bias,
        mlp_bias=bias,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms start at 1 and biases at 0: randomise them so they matter
        for p in hf.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return hf


def randomise_gpt2_norms(hf) -> None:
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))


CASES = {
    "gpt2-tied": lambda: tiny_gpt2(tied=True),
    "gpt2-untied": lambda: tiny_gpt2(tied=False),
    "gpt2-exact-gelu": lambda: tiny_gpt2(activation="gelu"),
    "llama-gqa": lambda: tiny_llama(n_kv_heads=2),
    "llama-mqa-tied": lambda: tiny_llama(n_kv_heads=1, tied=True),
    "llama-mha-bias": lambda: tiny_llama(n_kv_heads=4, bias=True),
}


@pytest.fixture(params=list(CASES), scope="module")
def hf_model(request):
    hf = CASES[request.param]()
    if request.param.startswith("gpt2"):
        randomise_gpt2_norms(hf)
    return hf


def test_gpt_hf_logits_match(hf_model):
    ours = from_hf(hf_model).eval()
    idx = torch.randint(VOCAB, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf_model(idx).logits
        got = ours(idx)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gpt_hf_tied_embeddings_follow_the_config(hf_model):
    ours = from_hf(hf_model)
    tied = hf_model.config.tie_word_embeddings
    assert (ours.lm_head.weight is ours.tok_emb.weight) == tied


def test_gpt_hf_greedy_generation_matches(hf_model):
    ours = from_hf(hf_model).eval()
    idx = torch.randint(VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    expected = hf_model.generate(
        idx,
        attention_mask=torch.ones_like(idx),
        max_new_tokens=20,
        do_sample=False,
        pad_token_id=0,
    )
    got = generate(ours, idx, max_new_tokens=20, temperature=0)
    assert got.tolist() == expected.tolist()


def test_gpt_hf_round_trip_leaves_every_tensor_unchanged(hf_model):
    first = from_hf(hf_model)
    again = from_hf(to_hf(first))
    assert again.config == first.config
    a, b = first.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_gpt_hf_to_hf_matches_ours_from_scratch():
    """Starting from our own random models (both variants), transformers computes our logits."""
    for cfg in (
        GPTConfig.gpt2(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=2, n_embd=16),
        GPTConfig.modern(
            vocab_size=VOCAB, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32
        ),
    ):
        torch.manual_seed(0)
        ours = GPT(cfg).eval()
        theirs = to_hf(ours).eval()
        idx = torch.randint(VOCAB, (2, 16))
        with torch.no_grad():
            torch.testing.assert_close(ours(idx), theirs(idx).logits, atol=1e-5, rtol=1e-5)


def test_gpt_hf_refuses_what_has_no_twin():
    mixed = GPT(GPTConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=8, pos="rope"))
    with pytest.raises(UsageError, match="no transformers twin"):
        to_hf(mixed)
    with pytest.raises(UsageError, match="GPT2LMHeadModel and LlamaForCausalLM"):
        from_hf(torch.nn.Linear(2, 2))
