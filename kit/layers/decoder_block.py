import keras

from kit.layers import _checks
from kit.layers._attention_core import MASK_VALUE
from kit.layers._register import register
from kit.layers.encoder_decoder_attention import EncoderDecoderAttention
from kit.layers.feed_forward import FeedForward
from kit.layers.self_attention import SelfAttention


@register
class DecoderBlock(keras.layers.Layer):
    """One decoder layer: masked self-attention, encoder-decoder attention, feed-forward.

    Pre-LN: `x = x + self_attn(ln(x)); x = x + cross_attn(ln(x), context);
    x = x + ffn(ln(x))`. Post-LN puts each norm after its residual sum instead.

    Training runs `call` over a whole target. Decoding runs `call_with_cache` one token
    at a time, with the self-attention cache passed in and returned and the cross
    attention's keys and values computed once per source by `project_context`.

    Args:
        num_heads: H. head_dim: Dh. ff_dim: inner width of the feed-forward block.
        dropout: rate on attention weights, feed-forward inner layer and residual branches.
        norm_first: pre-LN (True) or post-LN (False).
        layer_norm_epsilon: epsilon of the layer norms.
        mask_value: the float32 bias added to masked attention scores.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        x: (B, T, D), the target side.
        context: (B, S, D), the encoder output.
        context_padding_mask: optional (B, S), 1/True for real source tokens.
        return_attention_scores: also return the cross-attention weights (B, H, T, S).
        training: enables dropout.

    Returns:
        (B, T, D), and the cross-attention weights when asked.

    Example:
    >>> block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    >>> tuple(block(np.ones((1, 3, 8)), np.ones((1, 5, 8))).shape)
    (1, 3, 8)
    """

    def __init__(self, num_heads, head_dim, ff_dim, dropout=0.0, norm_first=True,
                 layer_norm_epsilon=1e-6, mask_value=MASK_VALUE, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.head_dim = _checks.positive_int("head_dim", head_dim)
        self.ff_dim = _checks.positive_int("ff_dim", ff_dim)
        self.dropout = _checks.rate("dropout", dropout)
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.mask_value = _checks.mask_value("mask_value", mask_value)

    def build(self, x_shape, context_shape, context_padding_mask_shape=None):
        def norm(name):
            layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                    dtype=self.dtype_policy, name=name)
            layer.build(x_shape)
            return layer

        self.self_attention = SelfAttention(self.num_heads, self.head_dim, causal=True,
                                            dropout=self.dropout, mask_value=self.mask_value,
                                            dtype=self.dtype_policy,
                                            name="self_attention")
        self.self_attention.build(x_shape)
        self.self_attention_norm = norm("self_attention_norm")
        self.cross_attention = EncoderDecoderAttention(self.num_heads, self.head_dim,
                                                       dropout=self.dropout,
                                                       mask_value=self.mask_value,
                                                       dtype=self.dtype_policy,
                                                       name="cross_attention")
        self.cross_attention.build(x_shape, context_shape)
        self.cross_attention_norm = norm("cross_attention_norm")
        self.feed_forward = FeedForward(self.ff_dim, dropout=self.dropout,
                                        dtype=self.dtype_policy, name="feed_forward")
        self.feed_forward.build(x_shape)
        self.feed_forward_norm = norm("feed_forward_norm")
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy,
                                                     name="residual_dropout")

    def _residual(self, x, norm, sublayer, training):
        """x + sublayer(ln(x)) (pre-LN) or ln(x + sublayer(x)) (post-LN).

        `sublayer` returns (output, extra); extra is passed through.
        """
        if self.norm_first:
            branch, extra = sublayer(norm(x))
            return x + self.residual_dropout(branch, training=training), extra
        branch, extra = sublayer(x)
        return norm(x + self.residual_dropout(branch, training=training)), extra

    def call(self, x, context, context_padding_mask=None, return_attention_scores=False,
             training=None):
        key, value = self.project_context(context)
        x, _ = self._residual(
            x, self.self_attention_norm,
            lambda h: (self.self_attention(h, training=training), None), training)
        x, weights = self._residual(
            x, self.cross_attention_norm,
            lambda h: self.cross_attention.attend_to(h, key, value, context_padding_mask,
                                                     return_attention_scores=True,
                                                     training=training),
            training)
        x, _ = self._residual(
            x, self.feed_forward_norm,
            lambda h: (self.feed_forward(h, training=training), None), training)
        return (x, weights) if return_attention_scores else x

    def project_context(self, context):
        """Cross-attention (k, v), each (B, S, H, Dh), from the encoder output (B, S, D)."""
        return self.cross_attention.project_context(context)

    def call_with_cache(self, x, position, self_cache, cross_key, cross_value,
                        context_padding_mask=None):
        """One decoding step.

        Args:
            x: (B, 1, D), the embedded token at `position`.
            position: int scalar, the token's position in the target.
            self_cache: (B, 2, T, H, Dh), this block's self-attention keys and values.
            cross_key, cross_value: (B, S, H, Dh), from `project_context`.
            context_padding_mask: optional (B, S).

        Returns:
            `(output (B, 1, D), updated self_cache)`.
        """
        x, self_cache = self._residual(
            x, self.self_attention_norm,
            lambda h: self.self_attention.call_with_cache(h, position, self_cache), False)
        x, _ = self._residual(
            x, self.cross_attention_norm,
            lambda h: (self.cross_attention.attend_to(h, cross_key, cross_value,
                                                      context_padding_mask), None),
            False)
        x, _ = self._residual(x, self.feed_forward_norm,
                              lambda h: (self.feed_forward(h), None), False)
        return x, self_cache

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_dim=self.head_dim, ff_dim=self.ff_dim,
                      dropout=self.dropout, norm_first=self.norm_first,
                      layer_norm_epsilon=self.layer_norm_epsilon, mask_value=self.mask_value)
        return config
