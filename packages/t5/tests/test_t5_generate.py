"""generate: the same tokens as transformers' generate on the same weights; the cache changes
nothing; sampling is reproducible."""

import pytest
import torch

from t5 import T5, T5Config, generate
from t5.generate import cut_at_eos

# A small vocabulary, so that EOS (id 1) comes up often and rows finish at different lengths.
TINY = dict(vocab_size=12, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_decoder_layers=2,
            num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
            dropout_rate=0.0)  # fmt: skip


def _model(seed: int, ff: str = "relu", tied: bool = False) -> T5:
    """A random model whose outputs vary: T5's initialisation makes a random decoder repeat its
    input token forever, so shrink the embeddings (the attention then carries the signal),
    widen the position biases, and make EOS likelier, so rows end at different lengths."""
    torch.manual_seed(seed)
    model = T5(T5Config(**TINY, feed_forward_proj=ff, tie_word_embeddings=tied)).eval()
    with torch.no_grad():
        model.shared.weight.mul_(0.05)
        for stack in (model.encoder, model.decoder):
            stack.layers[0].self_attn.relative_attention_bias.weight.normal_(0, 3.0)
        if model.lm_head is not None:
            model.lm_head.weight.normal_(0, 0.5)
            model.lm_head.weight[1] += 0.5 + 0.25 * seed
        else:
            model.shared.weight[1] *= 20.0
    return model


def _sources(seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 12, (4, 9), generator=g)
    mask = (torch.arange(9) < torch.tensor([9, 6, 3, 8])[:, None]).long()  # (B, S)
    return ids.masked_fill(mask == 0, 0), mask


def _hf_generate(hf, ids, mask, **kwargs):
    with torch.no_grad():
        return hf.generate(input_ids=ids, attention_mask=mask, do_sample=False, min_length=0,
                           no_repeat_ngram_size=0, decoder_start_token_id=0, eos_token_id=1,
                           pad_token_id=0, **kwargs)  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_greedy_equals_transformers(seed):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    from t5.hf import to_hf

    model = _model(seed, "gated-gelu" if seed % 2 else "relu", tied=seed == 3)
    hf = to_hf(model).eval()
    ids, mask = _sources(seed)
    want = _hf_generate(hf, ids, mask, max_new_tokens=12, num_beams=1)
    got = generate(model, ids, 12, attention_mask=mask)
    assert torch.equal(got, want)  # greedy: the same layout too (start token, padding)


@pytest.mark.parametrize(
    "num_beams, length_penalty, early_stopping",
    [(3, 1.0, False), (4, 1.0, False), (4, 0.6, True), (3, 2.0, "never"), (4, -0.5, False),
     (3, 0.0, True)],
)  # fmt: skip
def test_beam_search_equals_transformers(num_beams, length_penalty, early_stopping):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    from t5.hf import to_hf

    for seed in range(4):
        model = _model(seed, "gated-gelu" if seed % 2 else "relu", tied=seed == 3)
        hf = to_hf(model).eval()
        ids, mask = _sources(seed)
        settings = dict(num_beams=num_beams, length_penalty=length_penalty,
                        early_stopping=early_stopping)  # fmt: skip
        want = _hf_generate(hf, ids, mask, max_new_tokens=10, **settings)
        got = generate(model, ids, 10, attention_mask=mask, **settings)
        # transformers pads finished beams with EOS, not padding; compare up to each EOS
        assert cut_at_eos(got) == cut_at_eos(want), (seed, cut_at_eos(got), cut_at_eos(want))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cached_decoding_equals_uncached(num_beams):
    for seed in range(3):
        model = _model(seed, "gated-gelu")
        ids, mask = _sources(seed)
        cached = generate(model, ids, 10, num_beams=num_beams, attention_mask=mask)
        uncached = generate(model, ids, 10, num_beams=num_beams, attention_mask=mask,
                            use_cache=False)  # fmt: skip
        assert torch.equal(cached, uncached)


def test_a_row_alone_gets_what_it_gets_in_a_padded_batch():
    model = _model(0)
    ids, mask = _sources(0)
    batch = cut_at_eos(generate(model, ids, 10, num_beams=3, attention_mask=mask))
    for row in range(ids.size(0)):
        alone = ids[row : row + 1, : int(mask[row].sum())]
        assert cut_at_eos(generate(model, alone, 10, num_beams=3)) == [batch[row]]


def test_sampling_is_reproducible_and_top_k_1_is_greedy():
    model = _model(1)
    ids, mask = _sources(1)

    def sample(seed: int, **kw):
        g = torch.Generator().manual_seed(seed)
        return generate(model, ids, 10, do_sample=True, attention_mask=mask, generator=g, **kw)

    assert torch.equal(sample(0, temperature=1.5), sample(0, temperature=1.5))
    draws = {tuple(map(tuple, sample(s, temperature=2.0).tolist())) for s in range(5)}
    assert len(draws) > 1  # different seeds, different text
    assert torch.equal(sample(3, top_k=1), generate(model, ids, 10, attention_mask=mask))


def test_rows_end_at_eos_and_are_padded_after_it():
    model = _model(2)
    ids, mask = _sources(2)
    out = generate(model, ids, 15, attention_mask=mask)
    assert bool((out[:, 0] == 0).all())  # the decoder start token
    for row, tokens in zip(out.tolist(), cut_at_eos(out), strict=True):
        assert row[1 : 1 + len(tokens)] == tokens
        assert all(t == 0 for t in row[1 + len(tokens) :])


def test_bad_settings_are_refused():
    model = _model(0)
    ids = torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="beam sampling"):
        generate(model, ids, 5, num_beams=2, do_sample=True)
    with pytest.raises(ValueError, match="early_stopping"):
        generate(model, ids, 5, num_beams=2, early_stopping="sometimes")
