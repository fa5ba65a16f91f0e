"""BERT: the transformer stage's encoder, with three embeddings in front and two heads on top.

    input_ids (B, T), token_type_ids (B, T), attention_mask (B, T) 1 = real token, 0 = padding
    x = LayerNorm(word[input_ids] + position[0..T-1] + segment[token_type_ids])    # (B, T, H)
    x = dropout(x)
    x = EncoderLayer_i(x)  for i in 1..L      post-norm, GELU, the transformer stage's layers
    last_hidden_state = x                                                           # (B, T, H)
    pooler_output = tanh(W_p x[:, 0] + b_p)                                         # (B, H)

Why three embeddings: attention by itself sees a set, not a sequence, so a learned vector per
position says where a token is; BERT reads sentence pairs (question/passage, premise/hypothesis),
so a learned vector per segment (0 or 1) says which sentence a token belongs to. The sum is
normalised once, because the post-norm layers expect unit-scale input.

Why a pooler: the first token is always [CLS], which belongs to no word. During pretraining
BERT's next-sentence objective read the pair's label off that position through this dense+tanh
layer, so [CLS] learned to summarise the input; a classifier fine-tunes the same path.

Names: the layer stack reuses `transformer.TransformerEncoderLayer` (self_attn.q_proj,
ff.fc_in, norm1, ...), so `bert.hf` maps transformers' names onto ours; see that module's table.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transformer import TransformerEncoderLayer
from transformer.norms import FusedLayerNorm, LayerNorm


@dataclass
class BertConfig:
    """The architecture: transformers' BertConfig's fields, with its names and defaults."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"  # "gelu" (erf), "gelu_new"/"gelu_pytorch_tanh" (tanh), or "relu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: int = 2  # for the sequence-classification head
    # What the classifier reads: "cls" is BERT's pooler on [CLS]; "mean" averages the real
    # tokens, the way sentence-transformers trained MiniLM (ModernBERT's config uses this name).
    classifier_pooling: str = "cls"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.classifier_pooling not in ("cls", "mean"):
            raise ValueError(
                f"classifier_pooling must be cls or mean, not {self.classifier_pooling}"
            )
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {', '.join(_ACTIVATIONS)}")


# transformers' activation names -> the transformer stage's FeedForward names
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu"}  # fmt: skip


@dataclass
class BertOutput:
    last_hidden_state: Tensor  # (B, T, H)
    pooler_output: Tensor | None  # (B, H); None for a model without a pooler


class BertEmbeddings(nn.Module):
    """word + position + segment embeddings, then LayerNorm and dropout: (B, T) -> (B, T, H)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, H, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, H)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, H)
        self.norm = FusedLayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        T = input_ids.size(1)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)  # (B, T, H)
        if token_type_ids is None:  # one segment: add segment 0's vector everywhere
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(x))  # (B, T, H)


class Bert(nn.Module):
    """The encoder: `Bert(input_ids, attention_mask, token_type_ids)` -> BertOutput."""

    def __init__(self, config: BertConfig, add_pooler: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                config.hidden_size,
                config.num_attention_heads,
                dim_feedforward=config.intermediate_size,
                dropout=config.hidden_dropout_prob,
                activation=_ACTIVATIONS[config.hidden_act],
                layer_norm_eps=config.layer_norm_eps,
                batch_first=True,
                norm_first=False,  # BERT is post-norm: norm(x + sublayer(x))
            )
            for _ in range(config.num_hidden_layers)
        )
        for layer in self.layers:
            # The same LayerNorm as stage 5's, in torch's fused kernel (about 10% of a step).
            layer.norm1 = FusedLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            layer.norm2 = FusedLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            # BERT drops out the attention probabilities at its own rate, and has no dropout
            # between the feed-forward's two matrices (torch's layer has one there).
            layer.self_attn.dropout = config.attention_probs_dropout_prob
            layer.ff.dropout.p = 0.0
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooler else None
        self.apply(lambda m: init_weights(m, config.initializer_range))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> BertOutput:
        B, T = input_ids.shape
        if self.config.max_position_embeddings < T:
            raise ValueError(
                f"the sequence has {T} tokens; this model has "
                f"max_position_embeddings={self.config.max_position_embeddings}"
            )
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        padding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            padding = attention_mask == 0  # (B, T), True at padding (torch's key_padding_mask)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)  # (B, T, H)
        pooled = None
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, H), read off [CLS]
        return BertOutput(last_hidden_state=x, pooler_output=pooled)


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, LayerNorm at identity."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MaskedLMHead(nn.Module):
    """dense + GELU + LayerNorm, then the word embeddings transposed plus a bias: (B, T, vocab).

    The decoder shares its matrix with the input embeddings (weight tying): predicting a word
    and reading it use the same vector, which halves those parameters and trains both together.
    The bias stays the head's own: how frequent a word is belongs to the output only.
    """

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = _ACTIVATIONS[config.hidden_act]
        self.norm = FusedLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder_weight = word_embeddings.weight  # tied: the same Parameter
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: Tensor) -> Tensor:
        from transformer.feedforward import ACTIVATIONS

        h = self.norm(ACTIVATIONS[self.activation](self.dense(hidden)))  # (..., H)
        return h @ self.decoder_weight.T + self.bias  # (..., vocab)


class BertForMaskedLM(nn.Module):
    """The pretraining model: `(input_ids, ...) -> logits (B, T, vocab)`; no pooler needed."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config, add_pooler=False)
        self.head = MaskedLMHead(config, self.bert.embeddings.word_embeddings)
        self.head.apply(lambda m: init_weights(m, config.initializer_range))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab); with `positions` (N, 2) of (row, column), only those (N, vocab).

        Only the ~15% masked positions carry a loss, so the pretraining loop passes them and
        skips 85% of the largest matrix multiplication in the model (H x 30k per token).
        """
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state
        if positions is not None:
            hidden = hidden[positions[:, 0], positions[:, 1]]  # (N, H)
        return self.head(hidden)


class BertForSequenceClassification(nn.Module):
    """pooler_output -> dropout -> linear: `(input_ids, ...) -> logits (B, num_labels)`.

    With `config.classifier_pooling == "mean"` the classifier reads the mean of the real tokens'
    vectors instead of the pooler: a model trained for sentence embeddings by mean pooling
    (MiniLM) already puts the sentence there, while its [CLS] vector was never asked to.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        init_weights(self.classifier, config.initializer_range)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        out = self.bert(input_ids, attention_mask, token_type_ids)
        if self.config.classifier_pooling == "mean":
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            pooled = mean_pool(out.last_hidden_state, attention_mask)  # (B, H)
        else:
            pooled = out.pooler_output  # (B, H)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


def mean_pool(last_hidden_state: Tensor, attention_mask: Tensor) -> Tensor:
    """The average of the real tokens' vectors (padding excluded): (B, T, H) -> (B, H).

    Sentence-transformers' recipe for all-MiniLM-L6-v2: mean pooling, then L2 normalisation, so
    that a dot product of two embeddings is their cosine similarity.
    """
    weights = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    summed = (last_hidden_state * weights).sum(dim=1)  # (B, H)
    return summed / weights.sum(dim=1).clamp(min=1e-9)  # (B, H)
