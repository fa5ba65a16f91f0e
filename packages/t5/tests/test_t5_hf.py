"""Parity with transformers' T5ForConditionalGeneration on tiny random configs (float32)."""

import pytest
import torch

from t5 import T5, T5Config, seq2seq_loss, shift_right
from t5.hf import from_hf, hf_name, our_name, to_hf

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TINY = dict(vocab_size=61, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_decoder_layers=3,
            num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
            decoder_start_token_id=0)  # fmt: skip
VARIANTS = [("relu", True), ("relu", False), ("gated-gelu", True), ("gated-gelu", False)]


def _hf_model(ff: str, tied: bool, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.T5Config(**TINY, feed_forward_proj=ff, tie_word_embeddings=tied)
    hf = transformers.T5ForConditionalGeneration(config).eval()
    if not tied and hf.lm_head.weight is hf.shared.weight:
        # transformers 5 ties a fresh model even when asked not to (it then only skips the
        # rescaling); an untied checkpoint has its own matrix, so give it one
        hf.lm_head.weight = torch.nn.Parameter(torch.randn(61, 16) * 0.25)
    return hf


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 61, (3, 26), generator=g)  # long enough to reach the log buckets
    mask = (torch.arange(26) < torch.tensor([26, 19, 4])[:, None]).long()  # (B, S), padded
    ids = ids.masked_fill(mask == 0, 0)
    dec = torch.randint(2, 61, (3, 23), generator=g)
    return ids, mask, dec


@pytest.mark.parametrize("ff, tied", VARIANTS)
def test_logits_equal_transformers_with_padding(ff, tied):
    hf = _hf_model(ff, tied)
    ours = from_hf(hf)
    assert ours.config.tie_word_embeddings == tied
    assert ours.config.feed_forward_proj == ff
    ids, mask, dec = _inputs()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        got = ours(ids, dec, mask)
        memory = hf.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        real = mask.bool()
        torch.testing.assert_close(ours.encode(ids, mask)[real], memory[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ff, tied", VARIANTS)
def test_gradients_equal_transformers(ff, tied):
    hf = _hf_model(ff, tied, seed=1)
    ours = from_hf(hf)
    ids, mask, dec = _inputs(1)
    labels = torch.randint(2, 61, dec.shape)
    want = torch.nn.functional.cross_entropy(
        hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits.transpose(1, 2),
        labels,
    )
    got = torch.nn.functional.cross_entropy(ours(ids, dec, mask).transpose(1, 2), labels)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    want.backward()
    got.backward()
    hf_grads = {n: p.grad for n, p in hf.named_parameters()}
    for name, p in ours.named_parameters():
        theirs = hf_grads[hf_name(name, ff == "gated-gelu")]
        torch.testing.assert_close(p.grad, theirs, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("ff, tied", VARIANTS)
def test_round_trip_leaves_every_tensor_unchanged(ff, tied):
    torch.manual_seed(2)
    ours = T5(T5Config(**TINY, feed_forward_proj=ff, tie_word_embeddings=tied))
    hf = to_hf(ours)
    assert (hf.lm_head.weight is hf.shared.weight) == tied
    back = from_hf(hf)
    before, after = ours.state_dict(), back.state_dict()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    ids, mask, dec = _inputs(2)
    with torch.no_grad():  # and transformers computes the same function from them
        want = hf.eval()(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        torch.testing.assert_close(ours.eval()(ids, dec, mask), want, atol=1e-5, rtol=1e-5)


def test_loss_with_labels_equals_transformers():
    """transformers shifts the labels itself; ours does it with shift_right. -100 is ignored."""
    hf = _hf_model("gated-gelu", False, seed=3)
    ours = from_hf(hf)
    ids, mask, _ = _inputs(3)
    labels = torch.randint(2, 61, (3, 9))
    labels[1, 6:] = -100  # padding in the labels
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, labels=labels).loss
        decoder_input_ids = shift_right(labels, decoder_start_token_id=0, pad_token_id=0)
        got = seq2seq_loss(ours(ids, decoder_input_ids, mask), labels)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_the_transformer_stages_rmsnorm_is_t5s_layer_norm():
    """float32: the same numbers. bf16: T5's norm rounds once more (before the weight)."""
    from transformer import RMSNorm

    torch.manual_seed(4)
    theirs = transformers.models.t5.modeling_t5.T5LayerNorm(16, eps=1e-6)
    with torch.no_grad():
        theirs.weight.normal_(1.0, 0.2)
    ours = RMSNorm(16, eps=1e-6)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, 16) * 7
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    ours, theirs, x = ours.bfloat16(), theirs.bfloat16(), x.bfloat16()
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-2, atol=1e-2)  # bf16's last bit


def test_name_table_inverts():
    for gated in (False, True):
        model = T5(T5Config(**TINY, feed_forward_proj="gated-gelu" if gated else "relu",
                            tie_word_embeddings=False))  # fmt: skip
        for name in model.state_dict():
            assert our_name(hf_name(name, gated), gated) == name


def test_from_hf_refuses_other_models():
    config = transformers.T5Config(**TINY)
    with pytest.raises(TypeError, match="T5ForConditionalGeneration"):
        from_hf(transformers.T5EncoderModel(config))
