"""Stacks of layers: `TransformerEncoder`, `TransformerDecoder` and the encoder-decoder
`Transformer` of "Attention Is All You Need", with torch's arguments and `from_torch`.

    src (B, S) ids -> embed + positions -> encoder: N x [self-attn, FFN]       -> memory (B, S, d)
    tgt (B, T) ids -> embed + positions -> decoder: N x [causal self-attn,
                                                         cross-attn to memory, FFN] -> (B, T, d)

As in torch, these modules start and end with vectors: embeddings, positions and the output
projection belong to the model that uses them (translator.py, classifier.py). The encoder and
decoder of `Transformer` each end in a LayerNorm, as torch's do (pre-norm needs it: the stream
itself is never normalized otherwise; post-norm gets one more, harmless).

torch builds N layers by deep-copying one, so all layers of a fresh `TransformerEncoder` start
with the same weights; `Transformer` then re-initialises every matrix with Xavier-uniform. Both
are reproduced here. Masks: see layers.py; `generate_square_subsequent_mask(T)` is torch's
float causal mask (-inf above the diagonal).
"""

import copy

import torch
from torch import Tensor, nn

from transformer.layers import TransformerDecoderLayer, TransformerEncoderLayer
from transformer.norms import LayerNorm


def generate_square_subsequent_mask(
    sz: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """(sz, sz) float mask: 0 where query i may see key j (j <= i), -inf above the diagonal."""
    dtype = torch.get_default_dtype() if dtype is None else dtype
    full = torch.full((sz, sz), float("-inf"), device=device, dtype=dtype)
    return torch.triu(full, diagonal=1)  # (sz, sz)


def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths -> (B, max_len) boolean mask, True at padding (torch's key_padding_mask)."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)


def _clones(layer: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(n))


def _stack_from_torch(cls, module: nn.Module, layer_cls):
    """Our `cls` (an encoder or decoder stack) with a torch stack's layers, norm and mode.

    Each layer is copied by `layer_cls.from_torch` (its own weights, not N copies of the first),
    the final norm, if any, by LayerNorm.from_torch.
    """
    layers = [layer_cls.from_torch(m) for m in module.layers]
    norm = LayerNorm.from_torch(module.norm) if module.norm is not None else None
    ours = cls(layers[0], len(layers), norm)
    ours.layers = nn.ModuleList(layers)
    return ours.train(module.training)


class TransformerEncoder(nn.Module):
    """N copies of an encoder layer, then an optional norm (torch's `nn.TransformerEncoder`)."""

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: nn.Module | None = None,
        enable_nested_tensor: bool = True,  # accepted for torch's signature; no fast path here
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:
        """src (B, S, d_model) -> (B, S, d_model); the masks are handed to every layer."""
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))  # fmt: skip
        return self.norm(x) if self.norm is not None else x

    @classmethod
    def from_torch(cls, module: nn.TransformerEncoder) -> "TransformerEncoder":
        """Ours with the torch stack's weights, settings and train/eval mode."""
        return _stack_from_torch(cls, module, TransformerEncoderLayer)


class TransformerDecoder(nn.Module):
    """N copies of a decoder layer, then an optional norm (torch's `nn.TransformerDecoder`)."""

    def __init__(
        self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt (B, T, d_model), memory (B, S, d_model) -> (B, T, d_model)."""
        x = tgt
        for layer in self.layers:
            x = layer(
                x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal,
            )  # fmt: skip
        return self.norm(x) if self.norm is not None else x

    @classmethod
    def from_torch(cls, module: nn.TransformerDecoder) -> "TransformerDecoder":
        """Ours with the torch stack's weights, settings and train/eval mode."""
        return _stack_from_torch(cls, module, TransformerDecoderLayer)


class Transformer(nn.Module):
    """The encoder-decoder of Vaswani et al. (torch's `nn.Transformer`), batch_first by default."""

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        custom_encoder: nn.Module | None = None,
        custom_decoder: nn.Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        layer_args = {
            "dim_feedforward": dim_feedforward, "dropout": dropout, "activation": activation,
            "layer_norm_eps": layer_norm_eps, "batch_first": batch_first,
            "norm_first": norm_first, "bias": bias, **factory,
        }  # fmt: skip
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, **layer_args)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, **layer_args)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's init: Xavier-uniform for every matrix (the layers were deep copies)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """src (B, S, d_model), tgt (B, T, d_model) -> (B, T, d_model)."""
        batch_dim = 0 if self.batch_first else 1
        if src.dim() == 3 and src.size(batch_dim) != tgt.size(batch_dim):
            raise ValueError(
                f"src and tgt must have the same batch size, got {src.size(batch_dim)} "
                f"and {tgt.size(batch_dim)}"
            )
        if src.size(-1) != self.d_model or tgt.size(-1) != self.d_model:
            raise ValueError(
                f"src and tgt need d_model={self.d_model} features, got {src.size(-1)} "
                f"and {tgt.size(-1)}"
            )
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal
        )  # (B, S, d_model)
        return self.decoder(
            tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal,
        )  # fmt: skip  # (B, T, d_model)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    @classmethod
    def from_torch(cls, module: nn.Transformer) -> "Transformer":
        encoder = TransformerEncoder.from_torch(module.encoder)
        decoder = TransformerDecoder.from_torch(module.decoder)
        weights = {f"encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
        weights |= {f"decoder.{k}": v.clone() for k, v in decoder.state_dict().items()}
        ref = encoder.layers[0].ff.fc_in.weight
        ours = cls(
            module.d_model, module.nhead, custom_encoder=encoder, custom_decoder=decoder,
            batch_first=module.batch_first, device=ref.device, dtype=ref.dtype,
        )  # fmt: skip
        ours.load_state_dict(
            weights
        )  # undo _reset_parameters, which torch applies to custom parts too
        return ours.train(module.training)
