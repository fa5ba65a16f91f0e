"""`TransformerTranslator`: the encoder-decoder Transformer with its embeddings and output layer.

    src ids (B, S) -> src_embed * sqrt(d) + PE -> encoder ------------------> memory (B, S, d)
    tgt ids (B, T) -> tgt_embed * sqrt(d) + PE -> decoder (causal, + memory) -> (B, T, d)
                   -> output projection -> logits (B, T, V_tgt)

The decoder reads the target shifted right by one (<bos> y1 y2 ...) and predicts it unshifted
(y1 y2 ... <eos>): with the causal mask, position t sees only y_<t, so one forward pass trains
all T next-word predictions at once ("teacher forcing").

Embeddings, as in the paper's section 3.4, can be shared:
- `tie_output`: the output projection reuses the target embedding matrix (the logit of word w
  is the dot product with w's embedding); fewer parameters, and it trains better on small data.
- `share_embeddings`: one joint German+English vocabulary and a single matrix for source
  embedding, target embedding and output (three-way tying). Names, numbers and many
  loanwords are spelled the same in both languages, so they get one vector.
"""

import math
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from shared.config import option
from transformer.model import Transformer
from transformer.positions import SinusoidalPositionalEncoding


@dataclass
class TranslatorConfig:
    """The network; a small base Transformer suits Multi30k's 29,000 short captions."""

    d_model: int = option(256, "width of every token vector")
    nhead: int = option(8, "attention heads (d_model must divide evenly)")
    num_encoder_layers: int = option(3, "encoder layers")
    num_decoder_layers: int = option(3, "decoder layers")
    dim_feedforward: int = option(512, "hidden width of the feed-forward networks")
    dropout: float = option(0.1, "dropout everywhere (attention, sublayers, embeddings)")
    activation: Literal["relu", "gelu"] = option("relu", "FFN nonlinearity (the paper: relu)")
    norm_first: bool = option(True, "pre-norm (True) or the paper's post-norm (False)")
    share_embeddings: bool = option(False, "one joint vocabulary and embedding for both sides")
    tie_output: bool = option(True, "output projection = target embedding matrix")
    max_len: int = option(256, "longest sentence in tokens the positions cover")

    def __post_init__(self) -> None:
        if self.d_model % self.nhead:
            raise ValueError(
                f"--model.d_model {self.d_model} must be a multiple of --model.nhead {self.nhead}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--model.dropout must lie in [0, 1), got {self.dropout}")


class TransformerTranslator(nn.Module):
    def __init__(
        self, cfg: TranslatorConfig, src_vocab_size: int, tgt_vocab_size: int, pad_id: int = 0
    ) -> None:
        super().__init__()
        if cfg.share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError("share_embeddings needs one joint vocabulary for both languages")
        self.cfg, self.pad_id = cfg, pad_id
        d = cfg.d_model
        self.transformer = Transformer(
            d, cfg.nhead, cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.dim_feedforward,
            cfg.dropout, cfg.activation, norm_first=cfg.norm_first,
        )  # fmt: skip
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d, padding_idx=pad_id)
        self.src_embed = (
            self.tgt_embed
            if cfg.share_embeddings
            else nn.Embedding(src_vocab_size, d, padding_idx=pad_id)
        )
        # A list, not a set: a set of modules iterates in the order of their memory addresses,
        # so the two tables drew their random numbers in an order that changed from run to run.
        for embed in dict.fromkeys([self.src_embed, self.tgt_embed]):  # one table if shared
            nn.init.normal_(embed.weight, std=d**-0.5)  # times sqrt(d) below: unit scale
        self.position = SinusoidalPositionalEncoding(d, cfg.max_len)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(d, tgt_vocab_size, bias=False)
        if cfg.tie_output or cfg.share_embeddings:
            self.output.weight = self.tgt_embed.weight

    def _embed(self, embed: nn.Embedding, ids: Tensor, offset: int = 0) -> Tensor:
        x = embed(ids) * math.sqrt(self.cfg.d_model)  # (B, T, d)
        return self.dropout(self.position(x, offset))  # (B, T, d)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S) -> memory (B, S, d) and its padding mask (B, S), True at padding."""
        src_pad = src == self.pad_id  # (B, S)
        memory = self.transformer.encoder(
            self._embed(self.src_embed, src), src_key_padding_mask=src_pad
        )  # (B, S, d)
        return memory, src_pad

    def decode(self, tgt_in: Tensor, memory: Tensor, src_pad: Tensor) -> Tensor:
        """tgt_in (B, T) (starting with <bos>) -> next-word logits (B, T, V_tgt)."""
        h = self.transformer.decoder(
            self._embed(self.tgt_embed, tgt_in), memory, tgt_is_causal=True,
            tgt_key_padding_mask=tgt_in == self.pad_id, memory_key_padding_mask=src_pad,
        )  # fmt: skip  # (B, T, d)
        return self.output(h)  # (B, T, V_tgt)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, src_pad = self.encode(src)  # (B, S, d), (B, S)
        return self.decode(tgt_in, memory, src_pad)  # (B, T, V_tgt)
