import keras

from kit import _checks
from kit.layers._attention_core import (
    MASK_VALUE,
    attend,
    attend_cached,
    merge_heads,
    padding_bias,
    to_cache_layout,
)
from kit.layers._attention_sublayers import build_attention_sublayers
from kit.layers._register import register


@register
class EncoderDecoderAttention(keras.layers.Layer):
    """Multi-head encoder-decoder (cross) attention: Q from the decoder, K and V from the encoder.

    The keys and values depend on the source only, so a decoder computes them once per
    sentence (`project_context`) and reuses them at every step (`attend_to`).

    Args:
        num_heads: H. head_dim: Dh.
        dropout: dropout rate on the attention weights, in [0, 1).
        mask_value: the float32 bias added to masked scores (see `_attention_core`).
        kernel_initializer: initializer of the four kernels, each drawing with its own copy.
        per_head_fans: draw the kernels as (D, H, Dh) and (H, Dh, D) arrays, whose fans
            give ~3x smaller Glorot limits (see `QKVProjection`).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        x: (B, T, D), the decoder side.
        context: (B, S, Dc), the encoder output.
        context_padding_mask: optional (B, S), 1/True for real source tokens.
        return_attention_scores: also return the (B, H, T, S) float32 weights: which
            source tokens each target token looked at.
        training: enables dropout.

    Returns:
        (B, T, D), and the weights when asked.

    Example:
    >>> import numpy as np
    >>> layer = EncoderDecoderAttention(num_heads=2, head_dim=4)
    >>> y, w = layer(np.ones((1, 3, 8)), np.ones((1, 5, 8)), return_attention_scores=True)
    >>> tuple(y.shape), tuple(w.shape)
    ((1, 3, 8), (1, 2, 3, 5))
    """

    def __init__(self, num_heads, head_dim, dropout=0.0, mask_value=MASK_VALUE,
                 kernel_initializer="glorot_uniform", per_head_fans=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.head_dim = _checks.positive_int("head_dim", head_dim)
        self.dropout = _checks.rate("dropout", dropout)
        self.mask_value = _checks.mask_value("mask_value", mask_value)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.per_head_fans = bool(per_head_fans)

    def build(self, x_shape, context_shape, context_padding_mask_shape=None):
        build_attention_sublayers(self, x_shape, context_shape)

    def call(self, x, context, context_padding_mask=None, return_attention_scores=False,
             training=None):
        key, value = self.project_context(context)
        return self.attend_to(x, key, value, context_padding_mask, return_attention_scores,
                              training)

    def project_context(self, context):
        """(B, S, Dc) -> (k, v), each (B, S, H, Dh): computed once per source sentence."""
        return self.qkv.project_key_value(context)

    def project_context_for_decoding(self, context):
        """(B, S, Dc) -> (k, v), each (B, H, S, Dh): the keys and values in the layout
        `attend_cached_to` reads, transposed once per source sentence rather than at
        every step."""
        key, value = self.project_context(context)
        return to_cache_layout(key), to_cache_layout(value)

    def attend_cached_to(self, x, key, value, context_padding_mask=None):
        """One decoding step's attention of `x` (B, 1, D) over the keys and values of
        `project_context_for_decoding`."""
        query = self.qkv.project_query(x)  # (B, 1, H, Dh)
        bias = (None if context_padding_mask is None
                else padding_bias(context_padding_mask, self.mask_value))
        return self.output_dense(merge_heads(attend_cached(query, key, value, bias)))

    def attend_to(self, x, key, value, context_padding_mask=None, return_attention_scores=False,
                  training=None):
        """Attention of `x` (B, T, D) over precomputed `key`, `value` (B, S, H, Dh)."""
        query = self.qkv.project_query(x)  # (B, T, H, Dh)
        bias = (None if context_padding_mask is None
                else padding_bias(context_padding_mask, self.mask_value))
        out, weights = attend(query, key, value, bias, self.attention_dropout, training)
        out = self.output_dense(merge_heads(out))  # (B, T, D)
        return (out, weights) if return_attention_scores else out

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_dim=self.head_dim, dropout=self.dropout,
                      mask_value=self.mask_value,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      per_head_fans=self.per_head_fans)
        return config
