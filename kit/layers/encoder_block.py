from kit.layers._register import register
from kit.layers._residual_block import ResidualBlock
from kit.layers.self_attention import SelfAttention


@register
class EncoderBlock(ResidualBlock):
    """One encoder layer: self-attention over the whole source, then a feed-forward block.

    Pre-LN (`norm_first=True`): `x = x + attn(ln(x)); x = x + ffn(ln(x))`, stable without
    a learning-rate warm-up and what most recent models use. Post-LN (`norm_first=False`):
    `x = ln(x + attn(x)); x = ln(x + ffn(x))`, as in the 2017 paper and the TF tutorial.

    Args:
        num_heads: H. head_dim: Dh. ff_dim: inner width of the feed-forward block.
        dropout: rate on the attention weights, and on the sites switched on below.
        norm_first: pre-LN (True) or post-LN (False). This and the options below
            default to `TransformerConfig`'s, so a block built by hand is the model's.
        layer_norm_epsilon: epsilon of the layer norms.
        mask_value: the float32 bias added to masked attention scores.
        residual_dropout: also drop out each sub-layer's output before the residual sum.
        feed_forward_dropout: also drop out the feed-forward's inner activation.
        per_head_fans: initialise the attention kernels with per-head fans, ~3x
            smaller Glorot limits (see `QKVProjection`).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        x: (B, S, D). padding_mask: optional (B, S), 1/True for real tokens.
        return_attention_scores: also return the (B, H, S, S) weights.
        training: enables dropout.

    Returns:
        (B, S, D), and the weights when asked.

    Example:
    >>> import numpy as np
    >>> block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    >>> tuple(block(np.ones((1, 5, 8)), padding_mask=np.array([[1, 1, 1, 0, 0]])).shape)
    (1, 5, 8)
    """

    def build(self, x_shape, padding_mask_shape=None):
        self.self_attention = SelfAttention(self.num_heads, self.head_dim, causal=False,
                                            **self._attention_args(), name="self_attention")
        self.self_attention.build(x_shape)
        self.self_attention_norm = self._build_norm("self_attention_norm", x_shape)
        self._build_feed_forward(x_shape)
        self.feed_forward_norm = self._build_norm("feed_forward_norm", x_shape)
        self._build_residual_dropout()

    def call(self, x, padding_mask=None, return_attention_scores=False, training=None):
        x, weights = self._residual(
            x, self.self_attention_norm,
            lambda h: self.self_attention(h, padding_mask=padding_mask,
                                          return_attention_scores=True, training=training),
            training)
        x, _ = self._residual(x, self.feed_forward_norm,
                              lambda h: (self.feed_forward(h, training=training), None), training)
        return (x, weights) if return_attention_scores else x
