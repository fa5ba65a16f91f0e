"""Sentence embeddings the way all-MiniLM-L6-v2's model card prescribes, and a search with them.

    hidden = Bert(tokens).last_hidden_state          # (B, T, 384), one vector per token
    e = mean of hidden over the real tokens          # (B, 384), padding left out
    e = e / |e|                                       # unit length

The mean, not [CLS]: this model was trained (contrastively, on a billion sentence pairs) with
mean pooling, so that is where its meaning lives; its pooler was never trained for this. Unit
length makes the dot product of two embeddings their cosine similarity, so searching a corpus
is one matrix product: scores = corpus @ query, (N, 384) @ (384,) -> (N,).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bert.hf import load_folder
from bert.model import Bert, mean_pool
from bert.pretrained import resolve_init
from bert.tokenize import BertTokenizer
from shared.atomic import temporary_beside


@torch.no_grad()
def encode_sentences(
    model: Bert, tokenizer: BertTokenizer, sentences: Sequence[str], batch_size: int = 64
) -> Tensor:
    """(N, H) unit-length embeddings, in the order given (batched by length for speed)."""
    model.eval()
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out = torch.empty(len(sentences), model.config.hidden_size)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = tokenizer.batch([sentences[i] for i in chunk], max_length=256)
        hidden = model(batch["input_ids"], batch["attention_mask"]).last_hidden_state
        pooled = mean_pool(hidden, batch["attention_mask"])  # (b, H)
        out[chunk] = torch.nn.functional.normalize(pooled, dim=-1)
    return out


def search(query: Tensor, corpus: Tensor, k: int) -> list[tuple[int, float]]:
    """The k corpus rows most similar to `query`: (index, cosine similarity), best first."""
    scores = corpus @ query  # (N,)
    best = torch.topk(scores, min(k, len(scores)))
    return list(zip(best.indices.tolist(), best.values.tolist(), strict=True))


EXAMPLE_CORPUS = [
    "A man is eating food.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "A cheetah is running behind its prey.",
]


def run_embed(cfg: Any) -> None:
    folder = resolve_init(cfg.model)
    tokenizer = BertTokenizer.from_folder(folder)
    model = load_folder(folder, "Bert")
    if cfg.corpus is not None:
        lines = cfg.corpus.read_text(encoding="utf-8").splitlines()
        corpus_text = [line for line in lines if line.strip()]
    else:
        corpus_text = EXAMPLE_CORPUS
        print("(no --corpus: searching a built-in example of eight sentences)")
    query = encode_sentences(model, tokenizer, [cfg.text])[0]  # (H,)
    corpus = encode_sentences(model, tokenizer, corpus_text, cfg.batch_size)  # (N, H)
    print(f"query: {cfg.text}")
    for index, similarity in search(query, corpus, cfg.top_k):
        print(f"  {similarity:.4f}  {corpus_text[index]}")
    if cfg.out is not None:
        tmp = temporary_beside(cfg.out)
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, torch.cat([query[None], corpus]).numpy())
            tmp.replace(cfg.out)
        finally:
            tmp.unlink(missing_ok=True)
        print(f"wrote {cfg.out}: row 0 the query, rows 1.. the corpus, {corpus.size(1)} wide")
