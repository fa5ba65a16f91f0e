"""Bahdanau/Luong attention, the encoder-decoder, decoding, BLEU and the vocabulary."""

import random

import pytest
import torch

from attention import AdditiveAttention, MultiplicativeAttention, ScoredAttention
from attention.bleu import corpus_bleu
from attention.decode import beam_search, beam_search_batch, greedy_decode
from attention.seq2seq import Seq2Seq, Seq2SeqConfig, reverse_padded
from attention.translation_data import pad
from attention.vocab import BOS, EOS, PAD, UNK, Vocab, detokenize, tokenize

# ----------------------------------------------------------------------------------------------
# Additive and multiplicative attention


def scorers():
    torch.manual_seed(0)
    return {
        "bahdanau": AdditiveAttention(6, 4, 5),
        "general": MultiplicativeAttention(6, 4, "general"),
        "dot": MultiplicativeAttention(4, 4, "dot"),
    }


@pytest.mark.parametrize("name", ["bahdanau", "general", "dot"])
def test_attention_shapes_and_masking(name):
    attn = scorers()[name]
    dq = 4 if name == "dot" else 6
    query, keys, values = torch.randn(2, 3, dq), torch.randn(2, 5, 4), torch.randn(2, 5, 7)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])  # True = real word
    context, weights = attn(query, keys, values, mask=mask)
    assert context.shape == (2, 3, 7) and weights.shape == (2, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert (weights[1, :, 3:] == 0).all()
    torch.testing.assert_close(context, weights @ values)
    # one decoder step at a time: (B, Dq) queries give (B, Dv) contexts, the same numbers
    step_ctx, step_w = attn(query[:, 1], keys, values, mask=mask)
    assert step_ctx.shape == (2, 7) and step_w.shape == (2, 5)
    torch.testing.assert_close(step_ctx, context[:, 1])
    # padding content does not matter once it is masked
    keys2, values2 = keys.clone(), values.clone()
    keys2[1, 3:], values2[1, 3:] = 100.0, -100.0
    torch.testing.assert_close(attn(query, keys2, values2, mask=mask)[0][1], context[1])


def test_scores_follow_the_formulas():
    add, general, dot = scorers()["bahdanau"], scorers()["general"], scorers()["dot"]
    q6, q4, k = torch.randn(1, 6), torch.randn(1, 4), torch.randn(1, 3, 4)
    s_add = add.v(torch.tanh(add.query_proj(q6)[:, None] + add.key_proj(k))).squeeze(-1)
    torch.testing.assert_close(add(q6, k)[1], torch.softmax(s_add, -1))
    s_gen = torch.einsum("bq,qk,bsk->bs", q6, general.key_proj.weight, k)  # s^T W h
    torch.testing.assert_close(general(q6, k)[1], torch.softmax(s_gen, -1))
    torch.testing.assert_close(dot(q4, k)[1], torch.softmax((k @ q4[0]), -1))
    with pytest.raises(ValueError, match="dot attention needs query_dim == key_dim"):
        MultiplicativeAttention(6, 4, "dot")
    # `score` is the one line that differs; forward (softmax, masking, averaging) is shared
    torch.testing.assert_close(add.score(q6[:, None], add.project_keys(k))[:, 0], s_add)
    torch.testing.assert_close(general.score(q6[:, None], general.project_keys(k))[:, 0], s_gen)


def test_a_new_score_is_one_method():
    """A subclass that writes only `score` gets masking, one-step queries and averaging."""

    class NegativeDistance(ScoredAttention):
        def score(self, query, projected_keys):
            return -torch.cdist(query, projected_keys)  # (B, T, S)

    attn = NegativeDistance()
    query, keys = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    context, weights = attn(query, keys, mask=mask)
    want = torch.softmax((-torch.cdist(query, keys)).masked_fill(~mask[:, None], -torch.inf), -1)
    torch.testing.assert_close(weights, want)
    torch.testing.assert_close(context, want @ keys)
    torch.testing.assert_close(attn(query[:, 0], keys, mask=mask)[1], want[:, 0])


# ----------------------------------------------------------------------------------------------
# The encoder-decoder


def test_reverse_padded_reverses_within_each_length():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]).unsqueeze(-1)
    out = reverse_padded(x, torch.tensor([3, 2]))
    assert out.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_padded(out, torch.tensor([3, 2])), x)


def tiny_model(attention="general", vocab=12, seed=0, size=16) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(emb_dim=size, hidden=size, attention=attention, dropout=0.0)
    return Seq2Seq(cfg, vocab, vocab).eval()


@pytest.mark.parametrize("attention", ["bahdanau", "dot", "general"])
def test_padding_does_not_change_a_sentence(attention):
    """The batched, padded encoder gives each sentence what it gets alone (exactly)."""
    model = tiny_model(attention)
    a, b = [5, 6, 7, 8, 9], [4, 10]
    src = pad([a, b])
    tgt_in = torch.tensor([[BOS, 4, 5], [BOS, 6, 7]])
    logits, weights = model(src, tgt_in)
    alone, w_alone = model(torch.tensor([b]), tgt_in[1:])
    torch.testing.assert_close(logits[1], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights[1, :, :2], w_alone[0], atol=1e-6, rtol=1e-5)
    assert (weights[1, :, 2:] == 0).all()


def test_step_by_step_decoding_equals_teacher_forcing():
    model = tiny_model("bahdanau")
    src, tgt_in = pad([[5, 6, 7], [8, 9]]), torch.tensor([[BOS, 4, 5, 6], [BOS, 7, 8, 9]])
    logits, weights = model(src, tgt_in)
    enc = model.encode(src)
    hidden = enc.hidden
    for t in range(tgt_in.size(1)):
        logp, hidden, w = model.decode_step(tgt_in[:, t], hidden, enc)
        torch.testing.assert_close(logp, torch.log_softmax(logits[:, t], -1), atol=1e-5, rtol=0)
        torch.testing.assert_close(w, weights[:, t], atol=1e-6, rtol=0)


def reversal_batches(n_batches: int, rng: random.Random, batch: int = 32):
    """Random sequences of words 4..11, length 3-6; the target is the sequence reversed."""
    for _ in range(n_batches):
        srcs = [[rng.randrange(4, 12) for _ in range(rng.randint(3, 6))] for _ in range(batch)]
        yield pad(srcs), pad([[*reversed(s), EOS] for s in srcs])


def test_tiny_seq2seq_learns_to_reverse_sequences():
    model = tiny_model("general", size=32).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for src, tgt in reversal_batches(300, random.Random(0)):
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src, tgt = next(reversal_batches(1, random.Random(1), batch=64))
    hyps = greedy_decode(model, src)
    rows = [[t for t in row if t != PAD] for row in tgt.tolist()]
    exact = sum(h.ids == row for h, row in zip(hyps, rows, strict=True))
    assert exact / len(hyps) >= 0.9, f"only {exact}/{len(hyps)} sequences reversed exactly"
    # reversing is an anti-diagonal alignment: the first output word looks at the last input
    h = hyps[0]
    n = int((src[0] != PAD).sum())
    assert int(h.weights[0].argmax()) == n - 1


def test_beam_size_one_is_greedy_and_beams_score_at_least_as_well():
    model = tiny_model("bahdanau", seed=3)
    for sentence in ([5, 6, 7], [8, 9, 10, 11, 4], [4]):
        src = torch.tensor([sentence])
        (greedy,) = greedy_decode(model, src, max_len=12)
        beam1 = beam_search(model, src, beam_size=1, max_len=12)
        assert beam1.ids == greedy.ids
        torch.testing.assert_close(beam1.weights, greedy.weights)
        beam4 = beam_search(model, src, beam_size=4, alpha=0.0, max_len=12)
        if greedy.ids[-1] == EOS:  # a finished greedy path is one of the beam's candidates
            assert beam4.score >= greedy.score - 1e-5
        assert beam4.weights.shape == (len(beam4.ids), len(sentence))


@pytest.mark.parametrize(("attention", "seed"), [("bahdanau", 3), ("general", 4), ("dot", 5)])
def test_batched_beam_search_equals_one_sentence_at_a_time(attention, seed):
    """Many sentences as rows of one batch: the same words, scores and weights as one by one.

    The model is trained a little on reversal, so its outputs end at different lengths
    (a random one ends every sentence at once or never); max_len=4 cuts some sentences short.
    """
    model = tiny_model(attention, seed=seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for src, tgt in reversal_batches(40, random.Random(seed)):
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = model.eval().double()
    rng = random.Random(seed)
    sentences = [[rng.randrange(4, 12) for _ in range(rng.randint(1, 7))] for _ in range(9)]
    for beam_size, alpha, max_len in [(1, 0.6, 30), (3, 0.6, 30), (5, 0.0, 30), (4, 0.6, 4)]:
        batched = beam_search_batch(model, sentences, beam_size, alpha, max_len)
        for sentence, got in zip(sentences, batched, strict=True):
            alone = beam_search(model, torch.tensor(sentence), beam_size, alpha, max_len)
            assert got.ids == alone.ids, (sentence, beam_size)
            assert got.score == pytest.approx(alone.score, abs=1e-9)
            torch.testing.assert_close(got.weights, alone.weights.to(got.weights.dtype))
    assert beam_search_batch(model, [], 3) == []


# ----------------------------------------------------------------------------------------------
# Words and BLEU


def test_tokenize_and_detokenize():
    assert tokenize("Ein Mann fährt Fahrrad.") == ["Ein", "Mann", "fährt", "Fahrrad", "."]
    words = tokenize("A man's t-shirt, (blue) is wet!")
    assert words == ["A", "man's", "t-shirt", ",", "(", "blue", ")", "is", "wet", "!"]
    assert detokenize(words) == "A man's t-shirt, (blue) is wet!"


def test_vocab_min_freq_unknowns_and_round_trip(tmp_path):
    vocab = Vocab.build([["a", "b", "a"], ["a", "c", "b"]], min_freq=2)
    assert vocab.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"]
    assert vocab.encode(["a", "c"]) == [4, UNK, EOS]
    assert vocab.decode([BOS, 4, 5, EOS, 4]) == ["a", "b"]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").tokens == vocab.tokens
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])


def test_bleu_of_references_against_themselves_is_100():
    refs = ["A man rides a bike.", "Two dogs play in the snow.", "A girl in a red coat smiles."]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu(["A man rides.", "Dogs.", "A girl."], refs) < 30
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        corpus_bleu(refs[:2], refs)


def test_bleu_signature_names_the_settings():
    from attention.bleu import bleu_signature

    signature = bleu_signature()
    assert "nrefs:1" in signature and "tok:13a" in signature and "case:mixed" in signature
