from kit.layers._register import register
from kit.layers._residual_block import ResidualBlock
from kit.layers.encoder_decoder_attention import EncoderDecoderAttention
from kit.layers.self_attention import SelfAttention


@register
class DecoderBlock(ResidualBlock):
    """One decoder layer: masked self-attention, encoder-decoder attention, feed-forward.

    Pre-LN: `x = x + self_attn(ln(x)); x = x + cross_attn(ln(x), context);
    x = x + ffn(ln(x))`. Post-LN puts each norm after its residual sum instead.

    Training runs `call` over a whole target. Decoding runs `call_with_cache` one token
    at a time, with the self-attention cache passed in and returned and the cross
    attention's keys and values computed once per source by `project_context`.

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
        x: (B, T, D), the target side.
        context: (B, S, D), the encoder output.
        context_padding_mask: optional (B, S), 1/True for real source tokens.
        return_attention_scores: also return the masked self-attention weights
            (B, H, T, T) and the cross-attention weights (B, H, T, S).
        training: enables dropout.

    Returns:
        (B, T, D), and the two attention weights when asked.

    Example:
    >>> import numpy as np
    >>> block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    >>> tuple(block(np.ones((1, 3, 8)), np.ones((1, 5, 8))).shape)
    (1, 3, 8)
    """

    def build(self, x_shape, context_shape, context_padding_mask_shape=None):
        self.self_attention = SelfAttention(self.num_heads, self.head_dim, causal=True,
                                            **self._attention_args(), name="self_attention")
        self.self_attention.build(x_shape)
        self.self_attention_norm = self._build_norm("self_attention_norm", x_shape)
        self.cross_attention = EncoderDecoderAttention(self.num_heads, self.head_dim,
                                                       **self._attention_args(),
                                                       name="cross_attention")
        self.cross_attention.build(x_shape, context_shape)
        self.cross_attention_norm = self._build_norm("cross_attention_norm", x_shape)
        self._build_feed_forward(x_shape)
        self.feed_forward_norm = self._build_norm("feed_forward_norm", x_shape)
        self._build_residual_dropout()

    def call(self, x, context, context_padding_mask=None, return_attention_scores=False,
             training=None):
        key, value = self.cross_attention.project_context(context)
        x, self_weights = self._residual(
            x, self.self_attention_norm,
            lambda h: self.self_attention(h, return_attention_scores=True, training=training),
            training)
        x, weights = self._residual(
            x, self.cross_attention_norm,
            lambda h: self.cross_attention.attend_to(h, key, value, context_padding_mask,
                                                     return_attention_scores=True,
                                                     training=training),
            training)
        x, _ = self._residual(
            x, self.feed_forward_norm,
            lambda h: (self.feed_forward(h, training=training), None), training)
        return (x, self_weights, weights) if return_attention_scores else x

    def project_context(self, context):
        """Cross-attention keys and values, each (B, H, S, Dh), the layout
        `call_with_cache` reads, from the encoder output (B, S, D)."""
        return self.cross_attention.project_context_for_decoding(context)

    def call_with_cache(self, x, position, key_cache, value_cache, cross_key, cross_value,
                        context_padding_mask=None):
        """One decoding step.

        Args:
            x: (B, 1, D), the embedded token at `position`.
            position: int scalar, the token's position in the target.
            key_cache, value_cache: (B, H, T, Dh) each, this block's self-attention
                keys and values.
            cross_key, cross_value: (B, H, S, Dh) each, from `project_context`.
            context_padding_mask: optional (B, S).

        Returns:
            `(output (B, 1, D), key_cache, value_cache)`, the caches updated at `position`.
        """
        x, (key_cache, value_cache) = self._residual(
            x, self.self_attention_norm,
            lambda h: _split_cache(self.self_attention.call_with_cache(
                h, position, key_cache, value_cache)), False)
        x, _ = self._residual(
            x, self.cross_attention_norm,
            lambda h: (self.cross_attention.attend_cached_to(h, cross_key, cross_value,
                                                             context_padding_mask), None),
            False)
        x, _ = self._residual(x, self.feed_forward_norm,
                              lambda h: (self.feed_forward(h), None), False)
        return x, key_cache, value_cache


def _split_cache(result):
    """(output, key_cache, value_cache) -> (output, (key_cache, value_cache)): the
    (branch, extra) pair that `_residual` passes through."""
    output, key_cache, value_cache = result
    return output, (key_cache, value_cache)
