"""Sentence embeddings: ours equal sentence-transformers' on the packaged model, and the search."""

import pytest
import torch

from bert.embed import encode_sentences, search
from bert.hf import load_folder
from bert.pretrained import minilm_folder
from bert.tokenize import BertTokenizer

SENTENCES = ["A man is eating food.", "A man is riding a horse.", "A monkey is playing drums.",
             "Someone in a gorilla costume is playing a set of drums."]  # fmt: skip


def test_embeddings_equal_sentence_transformers_on_minilm():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    folder = minilm_folder()
    reference = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    want = torch.from_numpy(reference.encode(SENTENCES, normalize_embeddings=True))
    model, tokenizer = load_folder(folder, "Bert"), BertTokenizer.from_folder(folder)
    got = encode_sentences(model, tokenizer, SENTENCES, batch_size=3)  # uneven batches
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_search_ranks_by_cosine_similarity():
    corpus = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    query = torch.tensor([0.0, 1.0])
    assert [i for i, _ in search(query, corpus, 2)] == [2, 1]
    assert search(query, corpus, 10)[0][1] == pytest.approx(1.0)
