"""T5's own pieces: the position buckets, the shared bias, the cache, the training helpers."""

import pytest
import torch

from t5 import T5, T5Config, relative_position_bucket, seq2seq_loss, shift_right
from t5.model import T5Attention

TINY = dict(vocab_size=61, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_decoder_layers=3,
            num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
            dropout_rate=0.0)  # fmt: skip


def test_bucket_table_of_the_defaults():
    """32 buckets, max distance 128. Bidirectional: 16 per direction, 8 of them exact.

    A key d >= 8 tokens before the query lands in 8 + floor(log(d / 8) / log(128 / 8) * 8):
    d = 12 -> 8 + floor(0.585 * 2) = 9; d = 64 -> 8 + floor(3 * 2) = 14; d = 91 -> 8 +
    floor(log2(11.375) * 2) = 8 + floor(7.01) = 15, the last bucket, which also holds 128 and
    anything farther (clipped). Keys after the query get the same plus 16. Causal: all 32
    buckets look back, 16 exact, and the future is bucket 0.
    """
    table = {  # distance j - i: (bidirectional, causal)
        0: (0, 0), -1: (1, 1), -7: (7, 7), -8: (8, 8), -11: (8, 11), -12: (9, 12),
        -15: (9, 15), -16: (10, 16), -64: (14, 26), -90: (14, 29), -91: (15, 29),
        -127: (15, 31), -128: (15, 31), -1000: (15, 31),
        1: (17, 0), 7: (23, 0), 8: (24, 0), 64: (30, 0), 128: (31, 0), 1000: (31, 0),
    }  # fmt: skip
    d = torch.tensor(list(table))
    assert relative_position_bucket(d, True, 32, 128).tolist() == [v[0] for v in table.values()]
    assert relative_position_bucket(d, False, 32, 128).tolist() == [v[1] for v in table.values()]


@pytest.mark.parametrize("buckets, max_distance", [(32, 128), (8, 20), (16, 64), (64, 256)])
def test_buckets_equal_transformers(buckets, max_distance):
    transformers = pytest.importorskip("transformers")
    ref = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket
    d = torch.arange(-600, 601)
    for bidirectional in (True, False):
        want = ref(d, bidirectional=bidirectional, num_buckets=buckets, max_distance=max_distance)
        got = relative_position_bucket(d, bidirectional, buckets, max_distance)
        assert torch.equal(got, want)


def test_encoder_position_bias_depends_only_on_the_distance():
    torch.manual_seed(0)
    attn = T5Attention(T5Config(**TINY), has_relative_bias=True, bidirectional=True)
    bias = attn.position_bias(30, 30)[0]  # (h, L, S)
    # shifting query and key by the same amount leaves the bias unchanged
    for shift in (1, 5, 17):
        torch.testing.assert_close(
            bias[:, shift:, shift:], bias[:, :-shift, :-shift], rtol=0, atol=0
        )
    # and a query offset (the cache's) is the same as cutting rows off a longer square
    torch.testing.assert_close(
        attn.position_bias(3, 30, offset=27)[0], bias[:, 27:], rtol=0, atol=0
    )


def test_decoder_logits_with_a_cache_equal_the_whole_prefix():
    torch.manual_seed(1)
    for ff in ("relu", "gated-gelu"):
        model = T5(T5Config(**TINY, feed_forward_proj=ff)).eval()
        src = torch.randint(2, 61, (2, 9))
        mask = torch.ones_like(src)
        mask[1, 6:] = 0
        dec = torch.randint(2, 61, (2, 7))
        with torch.no_grad():
            full = model(src, dec, mask)  # (B, T, V)
            memory = model.encode(src, mask)
            cache = model.new_cache(7)
            first = model.decode(dec[:, :3], memory, mask, cache)  # a prefill of 3 tokens
            steps = [model.decode(dec[:, t : t + 1], memory, mask, cache) for t in range(3, 7)]
        got = torch.cat([first, *steps], dim=1)
        torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)


def test_beam_rows_fold_onto_their_source():
    """Three decoder rows per source read the source once; the same as repeating it."""
    torch.manual_seed(2)
    model = T5(T5Config(**TINY)).eval()
    src = torch.randint(2, 61, (2, 8))
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    dec = torch.randint(2, 61, (6, 4))
    with torch.no_grad():
        memory = model.encode(src, mask)
        folded = model.decode(dec, memory, mask)
        repeated = model.decode(dec, memory.repeat_interleave(3, 0), mask.repeat_interleave(3, 0))
    torch.testing.assert_close(folded, repeated, atol=1e-5, rtol=1e-5)


def test_shift_right_and_loss():
    labels = torch.tensor([[5, 6, 1, -100], [7, 1, -100, -100]])
    assert shift_right(labels, 0, 0).tolist() == [[0, 5, 6, 1], [0, 7, 1, 0]]
    logits = torch.randn(2, 4, 10)
    want = torch.nn.functional.cross_entropy(logits[labels != -100], labels[labels != -100])
    torch.testing.assert_close(seq2seq_loss(logits, labels), want)


def test_config_defaults_and_checks():
    c = T5Config()
    assert (c.num_decoder_layers, c.d_model, c.relative_attention_num_buckets) == (6, 512, 32)
    with pytest.raises(ValueError, match="feed_forward_proj"):
        T5Config(feed_forward_proj="swiglu")


def test_tied_output_is_rescaled_and_untied_has_its_own_matrix():
    torch.manual_seed(3)
    tied = T5(T5Config(**TINY)).eval()
    y = torch.randn(2, 3, 16)
    torch.testing.assert_close(tied.logits(y), (y * 16**-0.5) @ tied.shared.weight.T)
    untied = T5(T5Config(**TINY, tie_word_embeddings=False))
    assert untied.lm_head is not None and untied.lm_head.weight is not untied.shared.weight


def test_dropout_only_in_training_and_a_full_cache_is_refused():
    torch.manual_seed(5)
    model = T5(T5Config(**{**TINY, "dropout_rate": 0.3}))
    src, dec = torch.randint(2, 61, (2, 6)), torch.randint(2, 61, (2, 4))
    assert not torch.equal(model.train()(src, dec), model(src, dec))  # two dropout draws
    assert torch.equal(model.eval()(src, dec), model(src, dec))
    cache = model.new_cache(2)
    memory = model.encode(src)
    model.decode(dec[:, :2], memory, cache=cache)
    with pytest.raises(ValueError, match="holds 2 decoder tokens"):
        model.decode(dec[:, 2:3], memory, cache=cache)


@pytest.mark.parametrize("kind", ["adamw", "adafactor"])
def test_adafactor_moves_the_std_one_embeddings_by_the_same_fraction_as_the_matrices(kind):
    """T5's embeddings have std 1, its matrices std d**-0.5: AdamW's step (the same absolute
    size everywhere) barely moves the embeddings; Adafactor's (relative to each tensor's RMS)
    moves every tensor by about the same fraction. That is why the stage offers it."""
    from t5.training import make_optimizer

    torch.manual_seed(0)
    model = T5(T5Config(**{**TINY, "d_model": 64, "d_kv": 16}))  # matrices' std 1/8
    ids = torch.randint(3, TINY["vocab_size"], (32, 12))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, 1e-2, 0.0, kind)
    for _ in range(3):
        labels = ids.flip(1)
        logits = model(ids, shift_right(labels))
        seq2seq_loss(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = dict(model.named_parameters())

    def moved(name: str) -> float:
        return float((after[name].detach() - before[name]).norm() / before[name].norm())

    matrix = "encoder.layers.0.self_attn.k.weight"
    ratio = moved("shared.weight") / moved(matrix)
    if kind == "adafactor":
        assert 0.3 < ratio < 3, ratio
    else:
        assert ratio < 0.3, ratio
