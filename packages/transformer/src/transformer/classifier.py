"""`TransformerForSequenceClassification`: an encoder that reads a sentence and a linear head.

    ids (B, T) -> embedding * sqrt(d) + positions -> [CLS] prepended (cls pooling)
               -> TransformerEncoder (N layers)            (B, T', d)
               -> pool: the [CLS] vector, or the mean over real (unpadded) tokens   (B, d)
               -> dropout -> Linear(d, num_classes)       (B, num_classes) logits

Pooling turns T vectors into one. Mean pooling averages the tokens (padding excluded, or short
sentences would be diluted by zeros); [CLS] pooling (BERT) prepends a learned vector that
attends to the whole sentence and lets the head read it. From scratch on SST-2 both work; mean
pooling learns a little faster because every token gets a direct gradient from the head.

The embeddings are drawn with standard deviation d^-1/2 and scaled by sqrt(d), as in the paper,
so that they and the sinusoidal positions (entries in [-1, 1]) start at the same scale.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from shared.config import option
from transformer.layers import TransformerEncoderLayer
from transformer.model import TransformerEncoder
from transformer.norms import LayerNorm
from transformer.positions import LearnedPositionalEmbedding, SinusoidalPositionalEncoding


@dataclass
class ClassifierConfig:
    """The network; defaults train to about 90% on SST-2 dev in minutes on a CPU."""

    d_model: int = option(128, "width of every token vector")
    nhead: int = option(4, "attention heads per layer (d_model must divide evenly)")
    num_layers: int = option(2, "encoder layers")
    dim_feedforward: int = option(512, "hidden width of the feed-forward networks")
    dropout: float = option(0.1, "dropout on attention weights, sublayer outputs and the head")
    activation: Literal["relu", "gelu", "gelu_tanh", "swiglu"] = option("gelu", "FFN nonlinearity")
    norm_first: bool = option(True, "pre-norm (True) or the paper's post-norm (False)")
    pooling: Literal["mean", "cls"] = option("mean", "how T token vectors become one")
    positions: Literal["sinusoidal", "learned"] = option("sinusoidal", "position information")
    max_len: int = option(512, "longest sentence in tokens (longer ones are cut)")

    def __post_init__(self) -> None:
        if self.d_model % self.nhead:
            raise ValueError(
                f"--model.d_model {self.d_model} must be a multiple of --model.nhead {self.nhead}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--model.dropout must lie in [0, 1), got {self.dropout}")
        for name in ("d_model", "nhead", "num_layers", "dim_feedforward", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"--model.{name} must be at least 1, got {getattr(self, name)}")


class TransformerForSequenceClassification(nn.Module):
    def __init__(
        self, cfg: ClassifierConfig, vocab_size: int, num_classes: int = 2, pad_id: int = 0
    ) -> None:
        super().__init__()
        self.cfg, self.pad_id = cfg, pad_id
        d = cfg.d_model
        self.embed = nn.Embedding(vocab_size, d, padding_idx=pad_id)
        nn.init.normal_(self.embed.weight, std=d**-0.5)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()
        extra = 1 if cfg.pooling == "cls" else 0  # the [CLS] slot takes a position too
        if cfg.positions == "sinusoidal":
            self.position = SinusoidalPositionalEncoding(d, cfg.max_len + extra)
        else:
            self.position = LearnedPositionalEmbedding(cfg.max_len + extra, d)
        if cfg.pooling == "cls":
            self.cls_token = nn.Parameter(torch.randn(1, 1, d) * d**-0.5)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = TransformerEncoderLayer(
            d, cfg.nhead, cfg.dim_feedforward, cfg.dropout, cfg.activation,
            norm_first=cfg.norm_first,
        )  # fmt: skip
        final_norm = LayerNorm(d) if cfg.norm_first else None  # pre-norm leaves the stream raw
        self.encoder = TransformerEncoder(layer, cfg.num_layers, final_norm)
        for block in self.encoder.layers:  # fresh weights per layer (torch's clones are equal)
            for p in block.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        self.head = nn.Linear(d, num_classes)

    def forward(self, input_ids: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """input_ids (B, T), padding_mask (B, T) True at padding -> logits (B, num_classes)."""
        if input_ids.size(1) > self.cfg.max_len:
            input_ids = input_ids[:, : self.cfg.max_len]  # (B, max_len)
            padding_mask = padding_mask[:, : self.cfg.max_len] if padding_mask is not None else None
        if padding_mask is None:
            padding_mask = input_ids == self.pad_id  # (B, T)
        B = input_ids.size(0)
        x = self.embed(input_ids) * math.sqrt(self.cfg.d_model)  # (B, T, d)
        if self.cfg.pooling == "cls":
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, 1 + T, d)
            keep = torch.zeros(B, 1, dtype=torch.bool, device=x.device)
            padding_mask = torch.cat([keep, padding_mask], dim=1)  # (B, 1 + T)
        x = self.dropout(self.position(x))  # (B, T', d)
        x = self.encoder(x, src_key_padding_mask=padding_mask)  # (B, T', d)
        if self.cfg.pooling == "cls":
            pooled = x[:, 0]  # (B, d)
        else:
            real = (~padding_mask).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
            pooled = (x * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)  # (B, d)
        return self.head(self.dropout(pooled))  # (B, num_classes)
