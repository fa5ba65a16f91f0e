"""Learning BPE merges: a naive trainer that teaches, and a fast one that is used.

Byte-pair encoding grows a vocabulary one token at a time. Start from the base symbols (256 bytes
for byte-level BPE, characters for WordPiece), count every adjacent pair in the corpus, fuse the
most frequent pair into a new symbol, rewrite the corpus with it, and repeat until the vocabulary
has the size you asked for. The list of fused pairs, in order, is the tokenizer ("merges").

Both trainers work on *unique words with counts* (`{(104, 105): 7, ...}`), not on the raw text:
pre-tokenization already split the text into words and BPE never merges across them, so
"the" seen 20,000 times is processed once with weight 20,000.

- `train_merges_naive` recounts every pair of every word after each merge. Easy to read,
  O(merges x corpus): about a minute for 256 merges on tinyshakespeare.
- `train_merges` keeps the pair counts up to date instead. A merge only touches the words that
  contain the merged pair (`where[pair]`, an index from pair to word numbers), and only the pairs
  of those words change. The next best pair comes off a max-heap whose entries may be stale: an
  entry whose count no longer matches the live count is pushed back with the live count (counts
  of old pairs only ever fall; pairs containing the new token are pushed as they appear).

**Tie-break (both trainers, and the `tokenizers` library):** the pair with the highest count
wins; among equal counts, the pair `(left id, right id)` that is smallest as a tuple. Ids are
assigned in order (base symbols first, each merge's token next), so on a tie older tokens win.
When ours gives base symbols the same ids as the `tokenizers` library (special tokens first, then
the 256 byte characters sorted by code point), the two learn the same merges.

If a merge produces a string that is already a token (`a + bc` after `ab + c`), the existing id is
reused and training goes on until the vocabulary, not the merge list, reaches `vocab_size`, as in
the `tokenizers` library. Training stops early when the best count falls below `min_frequency`.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import pairwise

Pair = tuple[int, int]
Merge = tuple[int, int, int]  # (left id, right id, id of the fused token)


def merge_word(word: Sequence[int], left: int, right: int, new: int) -> list[int]:
    """Replace each non-overlapping (left, right), scanning left to right, by `new`."""
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if i < n - 1 and word[i] == left and word[i + 1] == right:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _add_token(tokens: list[str], index: dict[str, int], text: str) -> int:
    """The id of `text`, appending it to the vocabulary if it is new."""
    if text not in index:
        index[text] = len(tokens)
        tokens.append(text)
    return index[text]


def train_merges_naive(
    word_counts: dict[tuple[int, ...], int],
    tokens: Sequence[str],
    vocab_size: int,
    min_frequency: int = 2,
    join: Callable[[str, str], str] = operator.add,
) -> tuple[list[Merge], list[str]]:
    """The reference trainer: recount all pairs, take the best, rewrite every word; repeat.

    Returns the merges in order and the grown vocabulary (`tokens` followed by new tokens).
    """
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    tokens = list(tokens)
    index = {t: i for i, t in enumerate(tokens)}
    merges: list[Merge] = []
    while len(index) < vocab_size:
        pairs: Counter[Pair] = Counter()
        for word, count in zip(words, counts, strict=True):
            for pair in pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # highest count, then smallest pair
        if pairs[best] < max(min_frequency, 1):
            break
        new = _add_token(tokens, index, join(tokens[best[0]], tokens[best[1]]))
        merges.append((best[0], best[1], new))
        words = [merge_word(w, best[0], best[1], new) for w in words]
    return merges, tokens


def train_merges(
    word_counts: dict[tuple[int, ...], int],
    tokens: Sequence[str],
    vocab_size: int,
    min_frequency: int = 2,
    join: Callable[[str, str], str] = operator.add,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Merge], list[str]]:
    """The same merges as `train_merges_naive`, with pair counts kept up to date incrementally.

    `progress(n)` is called with the number of merges done so far, every 64 merges.
    """
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    tokens = list(tokens)
    index = {t: i for i, t in enumerate(tokens)}

    pair_counts: defaultdict[Pair, int] = defaultdict(int)
    where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> words that (may) contain it
    for i, word in enumerate(words):
        count = counts[i]
        for pair in pairwise(word):
            pair_counts[pair] += count
            where[pair].add(i)
    # heapq is a min-heap: (-count, pair) pops the highest count, then the smallest pair
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[Merge] = []
    while len(index) < vocab_size and heap:
        neg_count, pair = heapq.heappop(heap)
        live = pair_counts.get(pair, 0)
        if live != -neg_count:  # stale entry: the count fell since it was pushed
            if live > 0:
                heapq.heappush(heap, (-live, pair))
            continue
        if live < max(min_frequency, 1):
            break
        left, right = pair
        new = _add_token(tokens, index, join(tokens[left], tokens[right]))
        merges.append((left, right, new))

        touched: set[Pair] = set()  # pairs containing `new`: their counts rose
        for i in where.pop(pair):
            word = words[i]
            merged = merge_word(word, left, right, new)
            if len(merged) == len(word):  # the index was stale: the pair is gone from it
                continue
            count = counts[i]
            for p in pairwise(word):
                pair_counts[p] -= count
            for p in pairwise(merged):
                pair_counts[p] += count
                if p[0] == new or p[1] == new:
                    where[p].add(i)
                    touched.add(p)
            words[i] = merged
        pair_counts.pop(pair, None)
        for p in touched:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
        if progress is not None and len(merges) % 64 == 0:
            progress(len(merges))
    return merges, tokens
