import keras
from keras import ops

from kit import _checks
from kit.layers._attention_core import (
    MASK_VALUE,
    attend,
    attend_cached,
    cache_bias,
    causal_bias,
    merge_heads,
    padding_bias,
    to_cache_layout,
)
from kit.layers._attention_sublayers import build_attention_sublayers
from kit.layers._register import register


@register
class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention: every position of `x` attends to the positions of `x`.

    With `causal=True` this is the decoder's masked self-attention: position t sees
    positions <= t only, so a model can be trained on whole targets at once and still
    decode one token at a time (`call_with_cache`).

    Args:
        num_heads: H. head_dim: Dh.
        causal: hide the future (decoder) or not (encoder).
        dropout: dropout rate on the attention weights, in [0, 1).
        mask_value: the float32 bias added to masked scores (see `_attention_core`).
        kernel_initializer: initializer of the four kernels, each drawing with its own copy.
        per_head_fans: draw the kernels as (D, H, Dh) and (H, Dh, D) arrays, whose fans
            give ~3x smaller Glorot limits (see `QKVProjection`).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        x: (B, T, D).
        padding_mask: optional (B, T), 1/True for real tokens; padded keys are ignored.
        return_attention_scores: also return the (B, H, T, T) float32 weights.
        training: enables dropout.

    Returns:
        (B, T, D), and the weights when asked.

    Example:
    >>> import numpy as np
    >>> y = SelfAttention(num_heads=2, head_dim=4, causal=True)(np.ones((1, 3, 8)))
    >>> tuple(y.shape)
    (1, 3, 8)
    """

    def __init__(self, num_heads, head_dim, causal=False, dropout=0.0, mask_value=MASK_VALUE,
                 kernel_initializer="glorot_uniform", per_head_fans=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.head_dim = _checks.positive_int("head_dim", head_dim)
        self.causal = bool(causal)
        self.dropout = _checks.rate("dropout", dropout)
        self.mask_value = _checks.mask_value("mask_value", mask_value)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.per_head_fans = bool(per_head_fans)

    def build(self, x_shape, padding_mask_shape=None):
        build_attention_sublayers(self, x_shape)

    def call(self, x, padding_mask=None, return_attention_scores=False, training=None):
        q, k, v = self.qkv(x)  # each (B, T, H, Dh)
        bias = None
        if self.causal:
            bias = causal_bias(ops.shape(x)[1], self.mask_value)  # (1, 1, T, T)
        if padding_mask is not None:
            keys = padding_bias(padding_mask, self.mask_value)  # (B, 1, 1, T)
            bias = keys if bias is None else bias + keys
        out, weights = attend(q, k, v, bias, self.attention_dropout, training)
        out = self.output_dense(merge_heads(out))  # (B, T, D)
        return (out, weights) if return_attention_scores else out

    def call_with_cache(self, x, position, key_cache, value_cache):
        """One decoding step of causal self-attention with a fixed-length KV cache.

        Args:
            x: (B, 1, D), the input at `position`.
            position: int scalar (Python or tensor), where `x` sits in the sequence.
            key_cache, value_cache: (B, H, T, Dh) each, this layer's keys and values
                of the earlier positions; slots at and after `position` are ignored.

        Returns:
            `(output (B, 1, D), key_cache, value_cache)`, each cache written at
            `position` by its own `slice_update` (LiteRT DYNAMIC_UPDATE_SLICE) and
            returned as that op's output: nothing else touches it, so a runtime may
            bind one buffer as the cache's input and output and the update happens in
            place, with no copy of the cache per step.
        """
        if not self.causal:
            raise ValueError("call_with_cache() needs a causal SelfAttention (decoding a "
                             f"token may not see later ones). Received: causal={self.causal}")
        q, k, v = self.qkv(x)  # each (B, 1, H, Dh)
        position = ops.cast(position, "int32")
        zero = ops.zeros((), "int32")
        start = (zero, zero, position, zero)
        key_cache = ops.slice_update(key_cache, start, to_cache_layout(k))  # (B, H, T, Dh)
        value_cache = ops.slice_update(value_cache, start, to_cache_layout(v))
        bias = cache_bias(position, ops.shape(key_cache)[2], self.mask_value)  # (1, 1, 1, T)
        out = attend_cached(q, key_cache, value_cache, bias)
        return self.output_dense(merge_heads(out)), key_cache, value_cache  # (B, 1, D)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_dim=self.head_dim, causal=self.causal,
                      dropout=self.dropout, mask_value=self.mask_value,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      per_head_fans=self.per_head_fans)
        return config
