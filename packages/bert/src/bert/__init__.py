"""Stage 8: BERT, from the transformer stage's encoder to a fine-tuned classifier.

from bert import Bert, BertConfig, BertForMaskedLM, BertForSequenceClassification
from bert.hf import from_hf, to_hf, load_folder
"""

from bert.model import (
    Bert,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertOutput,
    mean_pool,
)

__all__ = [
    "Bert",
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertOutput",
    "mean_pool",
]
