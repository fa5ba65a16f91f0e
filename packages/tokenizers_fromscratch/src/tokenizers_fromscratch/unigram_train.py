"""Training a unigram model: start too big, then EM and pruning until the vocabulary fits.

BPE grows a vocabulary bottom-up; the unigram trainer (Kudo 2018, as in sentencepiece) cuts one
down top-down:

1. **Seed.** Every character, plus the most frequent substrings of the words (up to
   `max_piece_length` characters, ranked by frequency x length), scored by log relative
   frequency. Words come from the normalized text split before each "▁", so pieces never
   span two words.
2. **EM.** E-step: for every distinct word, the forward-backward algorithm over its lattice
   of pieces gives each piece's *expected* count under the current model (a piece that wins
   half the segmentation probability of a word seen 10 times gets 5). M-step: new scores from
   those counts, `digamma(count) - digamma(total)` (sentencepiece's "Bayesian EM", which
   shrinks rare pieces' scores harder than log(count / total)); pieces expected fewer than 0.5
   times are dropped.
3. **Prune.** For each piece, how much would the corpus likelihood fall if it were removed and
   its occurrences re-segmented into its next-best split? Keep the `shrinking_factor` (75%)
   of pieces that would hurt most to lose; single characters always stay.
4. Repeat 2-3 until the vocabulary is at most 10% over the target, then keep the
   best-scoring pieces (all characters included) and run one last EM.

What this leaves out: sentencepiece's suffix-array seeding (we count substrings of the distinct
words directly, fine for corpora of a few MB), `character_coverage` below 1 (every character is
kept), splitting digits or scripts into separate pieces, and multi-threading.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

from tokenizers_fromscratch.sp_model import SPACE

NEG_INF = float("-inf")


def digamma(x: float) -> float:
    """psi(x) for x > 0: shift x up with psi(x) = psi(x + 1) - 1/x, then the asymptotic series."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (-1 / 12 + f * (1 / 120 + f * (-1 / 252 + f * (1 / 240 + f * (-1 / 132)))))
    return result + math.log(x) - 0.5 / x + series


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def split_words(normalized: str) -> list[str]:
    """ "▁the▁cat" -> ["▁the", "▁cat"]: pieces may start with "▁" but never contain one later."""
    words = normalized.split(SPACE)
    out = [SPACE + w for w in words[1:] if w]
    if words[0]:
        out.insert(0, words[0])
    return out


def _edges(word: str, scores: dict[str, float], max_len: int) -> list[tuple[int, int, str, float]]:
    """Every (start, end, piece, score) of the word's lattice, ordered by start."""
    edges = []
    n = len(word)
    for i in range(n):
        for j in range(i + 1, min(n, i + max_len) + 1):
            piece = word[i:j]
            score = scores.get(piece)
            if score is not None:
                edges.append((i, j, piece, score))
    return edges


def expected_counts(
    words: Counter[str], scores: dict[str, float], max_len: int
) -> tuple[dict[str, float], float]:
    """E-step: expected piece counts over all words (forward-backward), and the log-likelihood."""
    expected: dict[str, float] = dict.fromkeys(scores, 0.0)
    loglik = 0.0
    for word, count in words.items():
        edges = _edges(word, scores, max_len)
        n = len(word)
        alpha = [NEG_INF] * (n + 1)
        alpha[0] = 0.0
        for i, j, _, s in edges:  # edges from i come after every edge into i
            alpha[j] = _logaddexp(alpha[j], alpha[i] + s)
        beta = [NEG_INF] * (n + 1)
        beta[n] = 0.0
        for i, j, _, s in reversed(edges):
            beta[i] = _logaddexp(beta[i], s + beta[j])
        z = alpha[n]
        loglik += count * z
        for i, j, piece, s in edges:
            expected[piece] += count * math.exp(alpha[i] + s + beta[j] - z)
    return expected, loglik


def best_segmentation(
    word: str, scores: dict[str, float], max_len: int, skip: str = ""
) -> list[str]:
    """Viterbi over the word's lattice, optionally without the piece `skip` (for pruning)."""
    n = len(word)
    best = [NEG_INF] * (n + 1)
    best[0] = 0.0
    back = [0] * (n + 1)
    for i, j, piece, s in _edges(word, scores, max_len):
        if piece != skip and best[i] + s > best[j]:
            best[j], back[j] = best[i] + s, i
    if best[n] == NEG_INF:
        return []
    pieces, j = [], n
    while j > 0:
        pieces.append(word[back[j] : j])
        j = back[j]
    return pieces[::-1]


def m_step(expected: dict[str, float], required: set[str]) -> dict[str, float]:
    """New scores: digamma(count) - digamma(total); drop pieces expected < 0.5 times."""
    kept = {p: c for p, c in expected.items() if c >= 0.5 or p in required}
    kept = {p: max(c, 1e-3) for p, c in kept.items()}
    log_total = digamma(sum(kept.values()))
    return {p: digamma(c) - log_total for p, c in kept.items()}


def prune(
    words: Counter[str], scores: dict[str, float], required: set[str], size: int, max_len: int
) -> dict[str, float]:
    """Keep the `size` pieces whose removal would lower the likelihood most (characters stay)."""
    freq: Counter[str] = Counter()  # Viterbi counts
    for word, count in words.items():
        for piece in best_segmentation(word, scores, max_len):
            freq[piece] += count
    total = sum(freq.values())
    losses: list[tuple[float, str]] = []
    for piece in scores:
        if piece in required or freq[piece] == 0:
            continue
        alternative = best_segmentation(piece, scores, max_len, skip=piece)
        if not alternative:
            continue
        f = freq[piece]
        # after removal, each use of `piece` becomes len(alternative) uses of other pieces
        log_total_after = math.log(total + f * (len(alternative) - 1))
        logprob_alt = sum(math.log(freq[a] + f) - log_total_after for a in alternative)
        logprob_piece = math.log(f) - math.log(total)
        losses.append((f * (logprob_piece - logprob_alt), piece))
    losses.sort(key=lambda x: (-x[0], x[1]))
    keep = {p for p in scores if p in required}
    for _, piece in losses:
        if len(keep) >= size:
            break
        keep.add(piece)
    return {p: s for p, s in scores.items() if p in keep}


def train_unigram(
    normalized_texts: Iterable[str],
    size: int,
    max_piece_length: int = 16,
    seed_size: int | None = None,
    shrinking_factor: float = 0.75,
    sub_iterations: int = 2,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[str, float]]:
    """`size` (piece, score) pairs, best first, learned from already normalized texts."""
    say = progress or (lambda message: None)
    words: Counter[str] = Counter()
    for text in normalized_texts:
        words.update(split_words(text))
    chars: Counter[str] = Counter()
    substrings: Counter[str] = Counter()
    for word, count in words.items():
        n = len(word)
        for i in range(n):
            chars[word[i]] += count
            for j in range(i + 2, min(n, i + max_piece_length) + 1):
                substrings[word[i:j]] += count
    required = set(chars)
    if size < len(required):
        raise ValueError(
            f"the corpus has {len(required)} distinct characters but only {size} pieces fit; "
            f"raise vocab_size"
        )
    seed_size = seed_size or max(4 * size, 1000)
    seeds = sorted(substrings, key=lambda p: (-substrings[p] * len(p), p))[:seed_size]
    seed_counts = {**chars, **{p: substrings[p] for p in seeds}}
    log_total = math.log(sum(seed_counts.values()))
    scores = {p: math.log(c) - log_total for p, c in seed_counts.items()}
    say(f"{len(words)} distinct words, {len(required)} characters, {len(scores)} seed pieces")

    target = int(size * 1.1)
    while True:
        for _ in range(sub_iterations):
            expected, loglik = expected_counts(words, scores, max_piece_length)
            scores = m_step(expected, required)
            say(f"EM: {len(scores)} pieces, log-likelihood {loglik:.1f}")
        if len(scores) <= target:
            break
        scores = prune(
            words, scores, required, max(target, int(len(scores) * shrinking_factor)),
            max_piece_length,
        )  # fmt: skip

    # final cut: every character, then the best-scoring pieces
    ranked = sorted((p for p in scores if p not in required), key=lambda p: (-scores[p], p))
    keep = required | set(ranked[: size - len(required)])
    scores = {p: s for p, s in scores.items() if p in keep}
    expected, _ = expected_counts(words, scores, max_piece_length)
    scores = m_step(expected, required)
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))
