"""T5: one encoder, one decoder, every task written as text in and text out (Raffel et al. 2020).

    input_ids (B, S), attention_mask (B, S) 1 = real token, decoder_input_ids (B, T)

    encoder:  x = dropout(shared[input_ids])                                       # (B, S, d)
              bias = relative_bias(j - i, bidirectional)   layer 0's table         # (1, h, S, S)
              x = x + dropout(SelfAttn(RMSNorm(x), bias + padding))   } each of
              x = x + dropout(FF(RMSNorm(x)))                         } L layers   # (B, S, d)
              memory = dropout(RMSNorm(x))                                         # (B, S, d)

    decoder:  y = dropout(shared[decoder_input_ids])                               # (B, T, d)
              bias = relative_bias(j - i, causal)           layer 0's table        # (1, h, T, T)
              y = y + dropout(SelfAttn(RMSNorm(y), bias + causal))    }
              y = y + dropout(CrossAttn(RMSNorm(y), memory, padding)) } each layer
              y = y + dropout(FF(RMSNorm(y)))                         }            # (B, T, d)
              y = dropout(RMSNorm(y))                                              # (B, T, d)
              logits = (y * d**-0.5) @ shared^T    tied (T5 1.0)                   # (B, T, V)
                     = lm_head(y)                  untied (T5 1.1)

What T5 changed against the transformer stage's encoder-decoder, and why:

- **No position embeddings.** Each attention score gets a learned scalar per head that depends
  only on the *distance* j - i between key and query, bucketed: exact for small distances,
  logarithmic up to `relative_attention_max_distance`, one shared bucket for the farthest
  (`relative_position_bucket`). The model cannot tell where a token is, only how far apart two
  are, so what it learns at one offset holds at every offset (tested: shifting both positions
  leaves the bias unchanged) and a longer input than any seen in training still gets sensible
  biases. The table lives in the first layer of each stack and its bias is added in every
  layer (computed once per forward). Cross-attention gets none: source and target positions do
  not live on one axis.
- **No 1/sqrt(d) in attention.** T5 folds the scale into the initialisation of the query
  matrix (std (d * d_kv)**-0.5 instead of d**-0.5), so the scores start at unit variance
  without it. The bias is added to unscaled scores, so the two must agree: loading T5 weights
  into attention that scales would shrink every score and leave the biases too large.
- **RMSNorm, pre-norm, no biases anywhere.** The normalisation only rescales (no mean, no bias)
  and every Linear lacks a bias: simpler, and Mesh TensorFlow found no loss from it. Pre-norm
  (the sublayer reads a normalised copy, the residual stream is not normalised) trains deep
  stacks without warm-up tricks; hence the extra final RMSNorm on each stack.
- **One embedding matrix for three jobs**: encoder input, decoder input, and (T5 1.0, tied)
  the output projection. The decoder's output is multiplied by d**-0.5 before the tied
  projection: the embeddings are initialised with std 1 (not 0.02), so without the rescaling
  the logits would have a standard deviation of sqrt(d). T5 1.1 unties the output matrix and
  drops the rescaling.
- **Feed-forward**: ReLU (T5 1.0), or gated GELU (T5 1.1, "GEGLU", Shazeer 2020):
  down(gelu_tanh(gate(x)) * up(x)).

The RMSNorm is the transformer stage's `RMSNorm`: T5's formula exactly (mean of squares in
float32, no centring, no bias; `eps=layer_norm_epsilon`). One difference in half precision
only: T5's own norm rounds the normalised vector to bf16/fp16 before multiplying by the weight,
ours multiplies in float32 and rounds once, so bf16 outputs can differ in the last bit.

Decoding one token at a time: `T5.decode(..., cache=T5Cache)` feeds only the newest decoder
tokens; each layer appends their keys and values to its self-attention buffers and computes
the cross-attention keys and values of the source once (see cache.py and generate.py).

Names follow the transformer stage (self_attn, cross_attn, ff.fc_in / ff.gate, up, down, norm1
before self-attention, norm2 before cross-attention) where a piece has a twin there, and
transformers' T5 (q, k, v, o, relative_attention_bias) where it has not. The norm before the
feed-forward is `norm_ff` in both stacks (torch's numbering would make it norm2 in the encoder
and norm3 in the decoder). `t5.hf` holds the table of both.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attention import scaled_dot_product_attention
from t5.cache import T5Cache
from transformer import FeedForward, RMSNorm
from transformer.feedforward import ACTIVATIONS


@dataclass
class T5Config:
    """The architecture: transformers' T5Config fields, with its names and defaults (t5-small)."""

    vocab_size: int = 32128  # 32k SentencePiece pieces + 100 sentinels, padded to a multiple of 128
    d_model: int = 512  # width of the residual stream
    d_kv: int = 64  # width of one head; d_kv * num_heads need not equal d_model in T5
    d_ff: int = 2048  # feed-forward inner width
    num_layers: int = 6  # encoder layers
    num_decoder_layers: int | None = None  # None: as many as the encoder
    num_heads: int = 8
    relative_attention_num_buckets: int = 32  # position-bias buckets (half per direction)
    relative_attention_max_distance: int = 128  # distances beyond this share the last bucket
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"  # "relu" (T5 1.0) or "gated-gelu" (T5 1.1)
    tie_word_embeddings: bool = True  # output = shared^T with the d**-0.5 rescaling (T5 1.0)
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0  # T5 starts decoding from the padding token

    def __post_init__(self) -> None:
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.feed_forward_proj not in ("relu", "gated-gelu"):
            raise ValueError(
                f"feed_forward_proj must be 'relu' or 'gated-gelu', got {self.feed_forward_proj!r}"
            )
        if self.relative_attention_num_buckets < 4:
            raise ValueError(
                "relative_attention_num_buckets must be at least 4 (exact and log buckets per "
                f"direction), got {self.relative_attention_num_buckets}"
            )


# ----------------------------------------------------------------------------------------------
# Relative positions


def relative_position_bucket(
    relative_position: Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> Tensor:
    """Distance j - i (key minus query, any shape) -> bucket index in [0, num_buckets), long.

    bidirectional (encoder): half the buckets for keys before the query, half for keys after.
    causal (decoder): keys after the query are never seen, so every bucket serves the past;
    future distances all land in bucket 0 with distance 0 (the causal mask hides them anyway).

    Within one direction's n buckets, the first n/2 are exact (distance 0, 1, ..., n/2 - 1);
    the rest cover n/2 .. max_distance on a log scale, so that nearby words are told apart
    precisely and far ones only roughly; the scale would reach bucket n at max_distance, so the
    last bucket takes everything from its lower edge on. With the defaults (32 buckets, 128,
    bidirectional), keys before the query: distances 0..7 have a bucket each (0..7), then
    8..11 -> 8, 12..15 -> 9, 16..22 -> 10, 23..31 -> 11, 32..45 -> 12, 46..63 -> 13,
    64..90 -> 14, and 91 on -> 15; keys after the query use 16 + the same (distance 0 stays 0).
    The float operations are those of Mesh TensorFlow, in the same order, so every boundary
    falls where T5's does (tested against transformers).
    """
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets  # keys after the query
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # how far back the key is
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log(distance / max_exact) / log(max_distance / max_exact) runs from 0 at max_exact to 1 at
    # max_distance; spread it over the remaining num_buckets - max_exact buckets. The clamp only
    # keeps log(0) out of the small branch, which torch.where discards anyway.
    scaled = torch.log(distance.clamp(min=max_exact).float() / max_exact)
    scaled = scaled / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    large = (max_exact + scaled.long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance.long(), large)


# ----------------------------------------------------------------------------------------------
# The pieces


class T5Attention(nn.Module):
    """Multi-head attention without biases and without the 1/sqrt(d_kv) scale.

    Self-attention (`source=None`) or cross-attention (keys and values from `source`). The
    layer that owns the position-bias table (`has_relative_bias`, the first of each stack)
    also computes the bias for the whole stack (`position_bias`).
    """

    def __init__(self, config: T5Config, has_relative_bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.dropout = config.dropout_rate
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        self.relative_attention_bias = (
            nn.Embedding(config.relative_attention_num_buckets, config.num_heads)
            if has_relative_bias
            else None
        )

    def position_bias(self, query_length: int, key_length: int, offset: int = 0) -> Tensor:
        """The learned bias for queries offset..offset+L-1 and keys 0..S-1: (1, h, L, S)."""
        if self.relative_attention_bias is None:
            raise RuntimeError("only the first layer of a stack holds the position-bias table")
        device = self.relative_attention_bias.weight.device
        query = torch.arange(query_length, device=device)[:, None] + offset  # (L, 1)
        key = torch.arange(key_length, device=device)[None, :]  # (1, S)
        buckets = relative_position_bucket(
            key - query, self.bidirectional, self.num_buckets, self.max_distance
        )  # (L, S)
        values = self.relative_attention_bias(buckets)  # (L, S, h)
        return values.permute(2, 0, 1).unsqueeze(0)  # (1, h, L, S)

    def _heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.d_kv).transpose(1, 2)  # (B, h, T, d_kv)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        source: Tensor | None = None,
        cache: T5Cache | None = None,
        layer: int = 0,
    ) -> Tensor:
        """x (B, L, d) -> (B, L, d). `mask` is added to the scores: (1 or B, 1 or h, L, S).

        With a cache, self-attention appends the new keys and values to layer `layer`'s
        buffers; cross-attention computes the source's keys and values on the first call and
        reads them afterwards. When x has g rows per source row (beams), the g rows' queries
        are folded into one row's query axis, so the source's keys serve them all uncopied.
        """
        B, L, _ = x.shape
        q = self._heads(self.q(x))  # (B, h, L, d_kv)
        if source is None:  # self-attention
            k, v = self._heads(self.k(x)), self._heads(self.v(x))  # (B, h, L, d_kv)
            if cache is not None:
                k, v = cache.update(layer, k, v)  # (B, h, S, d_kv): every token so far
        elif cache is not None and cache.has_cross(layer):
            k, v = cache.cross(layer)  # (B_src, h, S, d_kv), computed on the first step
        else:
            k, v = self._heads(self.k(source)), self._heads(self.v(source))  # (B_src, h, S, d_kv)
            if cache is not None:
                cache.set_cross(layer, k, v)
        if B % k.size(0):
            raise ValueError(f"{B} decoder rows cannot share {k.size(0)} source rows evenly")
        groups = B // k.size(0)  # rows of x per source row: 1, or the number of beams
        if groups > 1:  # (B_src * g, h, L, d_kv) -> (B_src, h, g * L, d_kv)
            q = q.view(k.size(0), groups, self.num_heads, L, self.d_kv).transpose(1, 2)
            q = q.reshape(k.size(0), self.num_heads, groups * L, self.d_kv)
        dropout = self.dropout if self.training else 0.0
        out = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=1.0)
        if groups > 1:  # back to one row per beam: (B, h, L, d_kv)
            out = out.view(k.size(0), self.num_heads, groups, L, self.d_kv).transpose(1, 2)
            out = out.reshape(B, self.num_heads, L, self.d_kv)
        out = out.transpose(1, 2).reshape(B, L, self.num_heads * self.d_kv)  # (B, L, h * d_kv)
        return self.o(out)  # (B, L, d)


class GatedFeedForward(nn.Module):
    """T5 1.1's gated GELU: down(dropout(gelu_tanh(gate(x)) * up(x))), (..., d) -> (..., d).

    The transformer stage's SwiGLU with GELU (tanh form) in place of SiLU; the same names.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = ACTIVATIONS["gelu_tanh"](self.gate(x)) * self.up(x)  # (..., d_ff)
        return self.down(self.dropout(h))  # (..., d)


def feed_forward(config: T5Config) -> nn.Module:
    if config.feed_forward_proj == "gated-gelu":
        return GatedFeedForward(config.d_model, config.d_ff, config.dropout_rate)
    # T5 1.0: the transformer stage's FeedForward, without biases (fc_in, fc_out)
    return FeedForward(config.d_model, config.d_ff, "relu", config.dropout_rate, bias=False)


class T5Block(nn.Module):
    """One pre-norm layer: self-attention, cross-attention (decoder only), feed-forward."""

    def __init__(self, config: T5Config, is_decoder: bool, has_relative_bias: bool) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        eps = config.layer_norm_epsilon
        self.self_attn = T5Attention(config, has_relative_bias, bidirectional=not is_decoder)
        self.norm1 = RMSNorm(config.d_model, eps=eps)
        if is_decoder:
            self.cross_attn = T5Attention(config, has_relative_bias=False, bidirectional=True)
            self.norm2 = RMSNorm(config.d_model, eps=eps)
        self.ff = feed_forward(config)
        self.norm_ff = RMSNorm(config.d_model, eps=eps)
        self.dropout = nn.Dropout(config.dropout_rate)  # on each sublayer's output

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor | None,
        memory: Tensor | None = None,
        cross_mask: Tensor | None = None,
        cache: T5Cache | None = None,
        layer: int = 0,
    ) -> Tensor:
        x = x + self.dropout(self.self_attn(self.norm1(x), self_mask, cache=cache, layer=layer))
        if self.is_decoder:
            h = self.cross_attn(self.norm2(x), cross_mask, source=memory, cache=cache, layer=layer)
            x = x + self.dropout(h)
        return x + self.dropout(self.ff(self.norm_ff(x)))  # (B, L, d)


class T5Stack(nn.Module):
    """The encoder (bidirectional) or the decoder (causal, with cross-attention): (B, L, d) in
    and out. The caller embeds the tokens: both stacks read the one `shared` matrix."""

    def __init__(self, config: T5Config, num_layers: int, is_decoder: bool) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.layers = nn.ModuleList(
            T5Block(config, is_decoder, has_relative_bias=(i == 0)) for i in range(num_layers)
        )
        self.final_norm = RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(
        self,
        x: Tensor,
        padding: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding: Tensor | None = None,
        cache: T5Cache | None = None,
    ) -> Tensor:
        """x (B, L, d) -> (B, L, d). padding / memory_padding: additive (B, 1, 1, S) masks."""
        L = x.size(1)
        offset = cache.length if cache is not None else 0  # tokens already decoded
        S = offset + L
        bias = self.layers[0].self_attn.position_bias(L, S, offset)  # (1, h, L, S), shared
        bias = bias.to(x.dtype)
        if self.is_decoder and L > 1:  # a query may not see later keys
            future = ~torch.ones(L, S, dtype=torch.bool, device=x.device).tril(offset)  # (L, S)
            bias = bias.masked_fill(future, torch.finfo(bias.dtype).min)
        self_mask = bias if padding is None else bias + padding  # (1 or B, h, L, S)
        x = self.dropout(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, self_mask, memory, memory_padding, cache, i)  # (B, L, d)
        if cache is not None:
            cache.advance(L)
        return self.dropout(self.final_norm(x))  # (B, L, d)


def additive_padding_mask(attention_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """(B, S) with 1 = real token -> (B, 1, 1, S) with 0 to keep and a huge negative to drop.

    A large finite number rather than -inf, as transformers does: a row with no real key at all
    then averages every value instead of producing NaN. None when there is no padding.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    drop = (attention_mask == 0)[:, None, None, :]  # (B, 1, 1, S)
    return torch.zeros(drop.shape, dtype=dtype, device=drop.device).masked_fill(
        drop, torch.finfo(dtype).min
    )


# ----------------------------------------------------------------------------------------------
# The model


class T5(nn.Module):
    """`T5(input_ids, decoder_input_ids, attention_mask=None)` -> logits (B, T, vocab_size)."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, config.num_layers, is_decoder=False)
        self.decoder = T5Stack(config, config.num_decoder_layers, is_decoder=True)
        self.lm_head = (
            None
            if config.tie_word_embeddings
            else nn.Linear(config.d_model, config.vocab_size, bias=False)
        )
        self.apply(lambda m: init_weights(m, config))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Source ids (B, S) -> memory (B, S, d): what every decoder layer attends to."""
        x = self.shared(input_ids)  # (B, S, d)
        return self.encoder(x, additive_padding_mask(attention_mask, x.dtype))

    def decode(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor,
        attention_mask: Tensor | None = None,
        cache: T5Cache | None = None,
    ) -> Tensor:
        """Decoder ids (B, T) and memory (B_src, S, d) -> logits (B, T, V).

        With a cache, `decoder_input_ids` are only the tokens not yet seen (their positions
        continue from `cache.length`). B may be a multiple of B_src (beams): row r then reads
        source row r // (B / B_src). `attention_mask` (B_src, S) is the source's padding.
        """
        y = self.shared(decoder_input_ids)  # (B, T, d)
        memory_padding = additive_padding_mask(attention_mask, y.dtype)  # (B_src, 1, 1, S)
        y = self.decoder(y, None, memory, memory_padding, cache)  # (B, T, d)
        return self.logits(y)

    def logits(self, y: Tensor) -> Tensor:
        """The decoder's output (..., d) -> scores over the vocabulary (..., V)."""
        if self.lm_head is not None:
            return self.lm_head(y)
        # tied: rescale first, because the embedding matrix has std-1 entries (see above)
        return (y * self.config.d_model**-0.5) @ self.shared.weight.T

    def forward(
        self,
        input_ids: Tensor,
        decoder_input_ids: Tensor,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        memory = self.encode(input_ids, attention_mask)  # (B, S, d)
        return self.decode(decoder_input_ids, memory, attention_mask)  # (B, T, V)

    def new_cache(self, max_len: int) -> T5Cache:
        """An empty cache for `max_len` decoder tokens (the start token included)."""
        return T5Cache(self.config.num_decoder_layers, max_len)


def init_weights(module: nn.Module, config: T5Config) -> None:
    """Mesh TensorFlow's initialisation, as transformers has it (initializer_factor 1).

    Each matrix gets std fan_in**-0.5, except the query, which gets (d * d_kv)**-0.5: the
    missing 1/sqrt(d_kv) of attention moved into the weights. Embeddings get std 1 (hence the
    d**-0.5 before the tied output). An untied lm_head gets d**-0.5 (transformers uses 1.0,
    which starts the logits at a standard deviation of sqrt(d)).
    """
    d, h, d_kv = config.d_model, config.num_heads, config.d_kv
    if isinstance(module, T5Attention):
        nn.init.normal_(module.q.weight, std=(d * d_kv) ** -0.5)
        nn.init.normal_(module.k.weight, std=d**-0.5)
        nn.init.normal_(module.v.weight, std=d**-0.5)
        nn.init.normal_(module.o.weight, std=(h * d_kv) ** -0.5)
        if module.relative_attention_bias is not None:
            nn.init.normal_(module.relative_attention_bias.weight, std=d**-0.5)
    elif isinstance(module, GatedFeedForward):
        nn.init.normal_(module.gate.weight, std=d**-0.5)
        nn.init.normal_(module.up.weight, std=d**-0.5)
        nn.init.normal_(module.down.weight, std=config.d_ff**-0.5)
    elif isinstance(module, FeedForward):
        nn.init.normal_(module.fc_in.weight, std=d**-0.5)
        nn.init.normal_(module.fc_out.weight, std=config.d_ff**-0.5)
    elif isinstance(module, T5):
        nn.init.normal_(module.shared.weight, std=1.0)
        if module.lm_head is not None:
            nn.init.normal_(module.lm_head.weight, std=d**-0.5)
    elif isinstance(module, RMSNorm):
        nn.init.ones_(module.weight)


# ----------------------------------------------------------------------------------------------
# Training helpers


def shift_right(labels: Tensor, decoder_start_token_id: int = 0, pad_token_id: int = 0) -> Tensor:
    """Teacher forcing's decoder input: labels (B, T) -> (B, T), start token first.

    Position t of the decoder reads label t - 1 and predicts label t. Ignored labels (-100, the
    loss's ignore index) become padding: the decoder must read a real token id there.
    """
    shifted = labels.new_full(labels.shape, decoder_start_token_id)  # (B, T)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


def seq2seq_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross entropy over the labels that count: logits (B, T, V), labels (B, T).

    Mark padding in the labels with -100 (not the pad id): T5's pad id 0 is also the decoder's
    start token, and a loss on padding would teach the model to emit it.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=ignore_index
    )
