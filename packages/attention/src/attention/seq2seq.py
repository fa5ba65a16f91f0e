"""An RNN encoder-decoder with attention: the translator of Bahdanau et al. and Luong et al.

    encoder: German words -> embeddings -> bidirectional GRU -> one vector per source word
    decoder: English words so far -> GRU state s_t -> attention over the source vectors ->
             context c_t -> tanh(W_c [c_t; s_t]) -> logits over the English vocabulary

Without attention the decoder would have to read the whole source from the encoder's last state;
with it, every output word looks back at every source word, and the attention weights show
which ones (heatmap.py draws them).

Shapes: B sentences, S source and T target positions, E embedding size, H hidden size, V vocab.

Choices, and why:
- Luong's arrangement (score the current state s_t, then combine) rather than Bahdanau's (score
  s_{t-1}, feed the context into the GRU): the decoder GRU then never waits for attention, so
  teacher-forced training runs it over all T positions in one call, and attention for all T is
  one batched matrix product. `decode_step` does the same computation one word at a time for
  greedy and beam search; a test checks the two agree. The score itself is selectable:
  `bahdanau` (additive), `dot` or `general` (multiplicative).
- The bidirectional encoder is two one-directional GRUs, the second reading each sentence
  reversed *within its own length*. A padded batch then gives exactly the outputs each sentence
  gets alone: no direction ever reads padding before a real word. Attention masks the padding.
- The recurrent layers are the seq_models stage's `GRU` (torch's interface); the attention is
  this stage's own.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attention.additive import AdditiveAttention
from attention.multiplicative import MultiplicativeAttention
from attention.vocab import BOS, PAD
from seq_models import GRU
from shared.config import option

AttentionKind = Literal["bahdanau", "dot", "general"]


@dataclass
class Seq2SeqConfig:
    emb_dim: int = option(256, "word embedding size, source and target")
    hidden: int = option(256, "GRU hidden size (the encoder has one GRU per direction)")
    attention: AttentionKind = option("general", "attention score: bahdanau, dot or general")
    dropout: float = option(0.3, "dropout on embeddings and on the decoder's output layer")
    tie_embeddings: bool = option(True, "share the target embedding with the output layer")

    def __post_init__(self) -> None:
        if self.emb_dim < 1 or self.hidden < 1:
            raise ValueError(f"--model.emb_dim and --model.hidden must be >= 1, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--model.dropout must be in [0, 1), got {self.dropout}")


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its own length, padding stays at the end. Self-inverse.

    x (B, S, D), lengths (B,): [a b c PAD] -> [c b a PAD].
    """
    B, S = x.shape[:2]
    pos = torch.arange(S, device=x.device).expand(B, S)  # (B, S)
    src = torch.where(pos < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - pos, pos)  # (B, S)
    return x.gather(1, src.unsqueeze(-1).expand_as(x))  # (B, S, D)


@dataclass
class Encoded:
    """What the decoder needs from the source, computed once per sentence."""

    memory: Tensor  # (B, S, H) encoder outputs, the attention's values
    keys: Tensor  # (B, S, A) the attention's pre-projected keys
    mask: Tensor  # (B, S) True on real source words
    hidden: Tensor  # (1, B, H) the decoder's initial state

    def select(self, index: Tensor) -> "Encoded":
        """Rows `index` of the batch (beam search copies a sentence once per hypothesis)."""
        return Encoded(
            self.memory.index_select(0, index),
            self.keys.index_select(0, index),
            self.mask.index_select(0, index),
            self.hidden.index_select(1, index),
        )


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        E, H = cfg.emb_dim, cfg.hidden
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=PAD)
        self.enc_fwd = GRU(E, H, batch_first=True)
        self.enc_bwd = GRU(E, H, batch_first=True)
        self.enc_out = nn.Linear(2 * H, H)  # both directions -> the size the decoder works in
        self.bridge = nn.Linear(2 * H, H)  # last states of both directions -> decoder's h_0
        self.decoder = GRU(E, H, batch_first=True)
        if cfg.attention == "bahdanau":
            self.attn: nn.Module = AdditiveAttention(H, H, H)
        else:
            self.attn = MultiplicativeAttention(H, H, score=cfg.attention)
        self.combine = nn.Linear(2 * H, E)  # [c_t; s_t] -> attentional state, size E
        self.out = nn.Linear(E, tgt_vocab)
        if cfg.tie_embeddings:
            self.out.weight = self.tgt_embed.weight  # (V, E): one matrix reads and writes words
        self.drop = nn.Dropout(cfg.dropout)

    # ------------------------------------------------------------------------------------------
    # Encoder

    def encode(self, src: Tensor) -> Encoded:
        """src (B, S) word ids, padded with PAD at the end."""
        mask = src != PAD  # (B, S)
        lengths = mask.sum(1).clamp(min=1)  # (B,)
        x = self.drop(self.src_embed(src))  # (B, S, E)
        fwd, _ = self.enc_fwd(x)  # (B, S, H)
        bwd, _ = self.enc_bwd(reverse_padded(x, lengths))  # (B, S, H), in reversed order
        bwd = reverse_padded(bwd, lengths)  # (B, S, H), aligned with the source words
        last_fwd = fwd[torch.arange(src.size(0), device=src.device), lengths - 1]  # (B, H)
        h0 = torch.tanh(self.bridge(torch.cat([last_fwd, bwd[:, 0]], dim=-1)))  # (B, H)
        memory = self.enc_out(torch.cat([fwd, bwd], dim=-1))  # (B, S, H)
        keys = self.attn.project_keys(memory)  # (B, S, A)
        return Encoded(memory, keys, mask, h0.unsqueeze(0))  # hidden (1, B, H)

    # ------------------------------------------------------------------------------------------
    # Decoder

    def _readout(self, states: Tensor, enc: Encoded) -> tuple[Tensor, Tensor]:
        """Decoder states (B, T, H) -> logits (B, T, V) and attention weights (B, T, S)."""
        context, weights = self.attn(
            states, enc.memory, enc.memory, mask=enc.mask, projected_keys=enc.keys
        )  # (B, T, H), (B, T, S)
        attentional = torch.tanh(self.combine(torch.cat([context, states], dim=-1)))  # (B,T,E)
        return self.out(self.drop(attentional)), weights  # (B, T, V), (B, T, S)

    def forward(self, src: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher forcing: tgt_in (B, T) is <bos> + the target shifted right.

        Returns logits (B, T, V) and attention weights (B, T, S).
        """
        enc = self.encode(src)
        y = self.drop(self.tgt_embed(tgt_in))  # (B, T, E)
        states, _ = self.decoder(y, enc.hidden)  # (B, T, H): every position in one call
        return self._readout(states, enc)

    def decode_step(
        self, prev: Tensor, hidden: Tensor, enc: Encoded
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One word: prev (B,) ids, hidden (1, B, H) -> log-probs (B, V), hidden, weights (B, S)."""
        y = self.tgt_embed(prev).unsqueeze(1)  # (B, 1, E)
        state, hidden = self.decoder(y, hidden)  # (B, 1, H), (1, B, H)
        logits, weights = self._readout(state, enc)  # (B, 1, V), (B, 1, S)
        return F.log_softmax(logits.squeeze(1).float(), dim=-1), hidden, weights.squeeze(1)

    def loss(self, src: Tensor, tgt: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """Mean cross-entropy per target word; tgt (B, T) ends in <eos>, padded with PAD."""
        bos = torch.full_like(tgt[:, :1], BOS)  # (B, 1)
        logits, _ = self(src, torch.cat([bos, tgt[:, :-1]], dim=1))  # (B, T, V)
        return F.cross_entropy(
            logits.flatten(0, 1).float(),  # (B*T, V)
            tgt.flatten(),  # (B*T,)
            ignore_index=PAD,
            label_smoothing=label_smoothing,
        )
