"""Corpus BLEU with sacrebleu, the number translation papers report.

BLEU (Papineni et al. 2002) counts how many of the output's 1- to 4-word sequences appear in the
reference, takes the geometric mean of those four precisions, and multiplies by a brevity penalty
that stops a system from scoring well by saying little. 100 means identical to the reference.

sacrebleu (Post 2018) fixes the details that made BLEU numbers incomparable between papers: it
takes *detokenized* text and applies its own tokenizer ("13a", the WMT standard), is
case-sensitive, and computes the statistics over the whole corpus, not per sentence. So we feed it
our detokenized output and the raw reference captions, exactly as the test set ships them.
"""

from collections.abc import Sequence


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU (13a tokenizer, case-sensitive) of one reference per sentence."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; they must pair up"
        )
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def bleu_signature() -> str:
    """sacrebleu's description of the exact settings, to print beside the score.

    sacrebleu >= 2.5 fills in the number of references only once a corpus has been scored, so
    score a one-sentence corpus first (one reference per sentence, as in corpus_bleu).
    """
    import sacrebleu

    metric = sacrebleu.BLEU()
    metric.corpus_score(["a"], [["a"]])
    return str(metric.get_signature())
