"""Generation: the sampling filters on known answers, the cache, batching, stopping, seeding.

A mock model makes the stop-string tests readable: it always predicts "the next letter of the
alphabet", so greedy decoding from "a" spells "bcdefg..." and we know where a stop string lands.
"""

import io
import math

import pytest
import torch
from torch import nn

from gpt import GPT, GPTConfig, KVCache, generate
from gpt.generate import (
    TextStreamer,
    apply_repetition_penalty,
    choose,
    pad_left,
    top_k_filter,
    top_p_filter,
)
from tokenizers_fromscratch import CharTokenizer

V = 40
ALPHABET = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module", params=["gpt2", "modern"])
def model(request):
    torch.manual_seed(0)
    make = GPTConfig.gpt2 if request.param == "gpt2" else GPTConfig.modern
    return GPT(make(vocab_size=V, block_size=48, n_layer=2, n_head=4, n_kv_head=2, n_embd=32))


class NextLetter(nn.Module):
    """Logits that put all the weight on token (previous token + 1) mod vocab."""

    def __init__(self, vocab: int):
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab, block_size=64, n_layer=1, n_head=1, n_embd=2)

    def new_cache(self, max_len=None):
        return KVCache(1, max_len or 64)

    def forward(self, idx, cache=None, positions=None, attention_mask=None):
        if cache is not None:
            cache.advance(idx.size(1))
        return (
            10.0
            * nn.functional.one_hot(
                (idx + 1) % self.config.vocab_size, self.config.vocab_size
            ).float()
        )


def test_gpt_generate_top_k_keeps_the_k_best():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert top_k_filter(logits, 2).isinf().tolist() == [[True, False, False, True]]


def test_gpt_generate_top_p_keeps_the_smallest_set_reaching_p():
    """probs 0.5, 0.3, 0.2: p=0.6 needs the first two (0.5 < 0.6 <= 0.8); p=0.5 the first."""
    logits = torch.tensor([[0.5, 0.2, 0.3]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.6)).tolist() == [[True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_gpt_generate_repetition_penalty_pushes_seen_tokens_down():
    """CTRL: a seen token's positive score is divided by the penalty, a negative one multiplied."""
    logits = torch.tensor([[2.0, -1.0, 3.0, 1.0]])
    seen = torch.tensor([[0, 1, 0]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -2.0, 3.0, 1.0]]
    masked = apply_repetition_penalty(logits, torch.tensor([[3, 0]]), 2.0, torch.tensor([[0, 1]]))
    assert masked.tolist() == [[1.0, -1.0, 3.0, 1.0]]  # token 3 sits in padding: not seen


def test_gpt_generate_temperature_zero_is_argmax():
    logits = torch.tensor([[0.1, 2.0, 0.3], [5.0, 0.0, 0.0]])
    assert choose(logits, temperature=0).tolist() == [1, 0]


def test_gpt_generate_low_temperature_concentrates_samples():
    logits = torch.tensor([[1.0, 2.0]]).expand(2000, 2)
    g = torch.Generator().manual_seed(0)
    hot = choose(logits, 1.0, generator=g).float().mean().item()
    cold = choose(logits, 0.25, generator=g).float().mean().item()
    assert abs(hot - 1 / (1 + math.exp(-1))) < 0.03  # softmax([1, 2])[1] = 0.731
    assert cold > 0.97  # softmax([4, 8])[1] = 0.982


def test_gpt_generate_greedy_is_repeated_argmax(model):
    idx = torch.randint(V, (1, 5), generator=torch.Generator().manual_seed(3))
    out = generate(model, idx, 10, temperature=0)
    seq = idx
    with torch.no_grad():
        for _ in range(10):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert out.tolist() == seq.tolist()


def test_gpt_generate_cache_and_recompute_give_the_same_tokens(model):
    idx = torch.randint(V, (2, 6), generator=torch.Generator().manual_seed(4))
    for kwargs in ({"temperature": 0}, {"temperature": 1.0, "top_k": 10, "seed": 7}):
        a = generate(model, idx, 30, use_cache=True, **kwargs)
        b = generate(model, idx, 30, use_cache=False, **kwargs)
        assert a.tolist() == b.tolist()


def test_gpt_generate_left_padded_batch_equals_one_prompt_at_a_time(model):
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(V, (n,), generator=g).tolist() for n in (3, 9, 6)]
    idx, mask = pad_left(prompts, pad_id=0)
    batched = generate(model, idx, 15, temperature=0, attention_mask=mask)
    for row, prompt in enumerate(prompts):
        alone = generate(model, torch.tensor([prompt]), 15, temperature=0)
        assert batched[row, idx.size(1) :].tolist() == alone[0, len(prompt) :].tolist()


def test_gpt_generate_past_the_block_size(model):
    """A context longer than the block is cropped; the cache is rebuilt from recent tokens."""
    out = generate(model, torch.zeros(1, 40, dtype=torch.long), 30, temperature=0)
    assert out.shape == (1, 70)


def test_gpt_generate_seeded_sampling_is_reproducible(model):
    idx = torch.zeros(2, 1, dtype=torch.long)
    a = generate(model, idx, 20, temperature=1.0, seed=1)
    b = generate(model, idx, 20, temperature=1.0, seed=1)
    c = generate(model, idx, 20, temperature=1.0, seed=2)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_gpt_generate_stop_strings_end_each_row():
    tok = CharTokenizer(list(ALPHABET))
    mock = NextLetter(len(ALPHABET))
    z = tok.encode("z")[0]
    idx, mask = pad_left([tok.encode("a"), tok.encode("jk")], pad_id=z)
    out = generate(
        mock,
        idx,
        20,
        temperature=0,
        stop=["ef", "mn"],
        decode=tok.decode,
        attention_mask=mask,
        pad_token_id=z,
    )
    # row 1 stops after "mn" and is padded with "z" while row 0 runs on to "ef"
    assert [tok.decode(row) for row in out.tolist()] == ["zabcdef", "jklmnzz"]


def test_gpt_generate_eos_and_streaming():
    tok = CharTokenizer(list(ALPHABET))
    mock = NextLetter(len(ALPHABET))
    buffer = io.StringIO()
    streamer = TextStreamer(tok.decode, file=buffer)
    out = generate(
        mock,
        torch.tensor([tok.encode("w")]),
        10,
        temperature=0,
        eos_token_id=tok.encode("b")[0],
        stream=streamer,
    )
    streamer.end()
    assert tok.decode(out[0].tolist()) == "wxyzab"  # wraps around the alphabet, stops at "b"
    assert buffer.getvalue() == "xyzab\n"
