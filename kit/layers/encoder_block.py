import keras

from kit.layers import _checks
from kit.layers._attention_core import MASK_VALUE
from kit.layers._register import register
from kit.layers.feed_forward import FeedForward
from kit.layers.self_attention import SelfAttention


@register
class EncoderBlock(keras.layers.Layer):
    """One encoder layer: self-attention over the whole source, then a feed-forward block.

    Pre-LN (`norm_first=True`): `x = x + attn(ln(x)); x = x + ffn(ln(x))`, stable without
    a learning-rate warm-up and what most recent models use. Post-LN (`norm_first=False`):
    `x = ln(x + attn(x)); x = ln(x + ffn(x))`, as in the 2017 paper and the TF tutorial.

    Args:
        num_heads: H. head_dim: Dh. ff_dim: inner width of the feed-forward block.
        dropout: rate on attention weights, feed-forward inner layer and residual branches.
        norm_first: pre-LN (True) or post-LN (False).
        layer_norm_epsilon: epsilon of the layer norms.
        mask_value: the float32 bias added to masked attention scores.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        x: (B, S, D). padding_mask: optional (B, S), 1/True for real tokens.
        return_attention_scores: also return the (B, H, S, S) weights.
        training: enables dropout.

    Returns:
        (B, S, D), and the weights when asked.

    Example:
    >>> block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    >>> tuple(block(np.ones((1, 5, 8)), padding_mask=np.array([[1, 1, 1, 0, 0]])).shape)
    (1, 5, 8)
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

    def build(self, x_shape, padding_mask_shape=None):
        def norm(name):
            layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                    dtype=self.dtype_policy, name=name)
            layer.build(x_shape)
            return layer

        self.self_attention = SelfAttention(self.num_heads, self.head_dim, causal=False,
                                            dropout=self.dropout, mask_value=self.mask_value,
                                            dtype=self.dtype_policy,
                                            name="self_attention")
        self.self_attention.build(x_shape)
        self.self_attention_norm = norm("self_attention_norm")
        self.feed_forward = FeedForward(self.ff_dim, dropout=self.dropout,
                                        dtype=self.dtype_policy, name="feed_forward")
        self.feed_forward.build(x_shape)
        self.feed_forward_norm = norm("feed_forward_norm")
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy,
                                                     name="residual_dropout")

    def call(self, x, padding_mask=None, return_attention_scores=False, training=None):
        def attention(h):
            return self.self_attention(h, padding_mask=padding_mask,
                                       return_attention_scores=True, training=training)

        if self.norm_first:
            branch, weights = attention(self.self_attention_norm(x))
            x = x + self.residual_dropout(branch, training=training)
            branch = self.feed_forward(self.feed_forward_norm(x), training=training)
            x = x + self.residual_dropout(branch, training=training)
        else:
            branch, weights = attention(x)
            x = self.self_attention_norm(x + self.residual_dropout(branch, training=training))
            branch = self.feed_forward(x, training=training)
            x = self.feed_forward_norm(x + self.residual_dropout(branch, training=training))
        return (x, weights) if return_attention_scores else x

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_dim=self.head_dim, ff_dim=self.ff_dim,
                      dropout=self.dropout, norm_first=self.norm_first,
                      layer_norm_epsilon=self.layer_norm_epsilon, mask_value=self.mask_value)
        return config
