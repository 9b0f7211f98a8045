"""What the encoder and decoder blocks share: their arguments, their layer norms and the
residual rule that `norm_first` selects."""

import keras

from kit import _checks
from kit.layers._attention_core import MASK_VALUE
from kit.layers.feed_forward import FeedForward
from kit.models.config import TransformerConfig as _DEFAULTS


class ResidualBlock(keras.layers.Layer):
    """Base of `EncoderBlock` and `DecoderBlock` (not registered: never used alone)."""

    # The architecture's defaults are the model config's (measured: benchmarks/README.md),
    # so that a block built by hand is the block the model builds.
    def __init__(self, num_heads, head_dim, ff_dim, dropout=0.0,
                 norm_first=_DEFAULTS.norm_first,
                 layer_norm_epsilon=_DEFAULTS.layer_norm_epsilon, mask_value=MASK_VALUE,
                 residual_dropout=_DEFAULTS.residual_dropout,
                 feed_forward_dropout=_DEFAULTS.feed_forward_dropout,
                 per_head_fans=_DEFAULTS.attention_initializer == "glorot_uniform_per_head",
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.head_dim = _checks.positive_int("head_dim", head_dim)
        self.ff_dim = _checks.positive_int("ff_dim", ff_dim)
        self.dropout = _checks.rate("dropout", dropout)
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.mask_value = _checks.mask_value("mask_value", mask_value)
        self.residual_dropout = bool(residual_dropout)
        self.feed_forward_dropout = bool(feed_forward_dropout)
        self.per_head_fans = bool(per_head_fans)

    def _build_norm(self, name, x_shape):
        layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                dtype=self.dtype_policy, name=name)
        layer.build(x_shape)
        return layer

    def _attention_args(self):
        """What both kinds of attention sub-layer take from the block."""
        return dict(dropout=self.dropout, mask_value=self.mask_value,
                    per_head_fans=self.per_head_fans, dtype=self.dtype_policy)

    def _build_feed_forward(self, x_shape):
        # A switched-off dropout site is a rate-0 Dropout (Keras skips it, no op in the
        # graph), so the sub-layers stay those that earlier saved files hold.
        rate = self.dropout if self.feed_forward_dropout else 0.0
        self.feed_forward = FeedForward(self.ff_dim, dropout=rate, dtype=self.dtype_policy,
                                        name="feed_forward")
        self.feed_forward.build(x_shape)

    def _build_residual_dropout(self):
        # Not `self.residual_dropout`, now the argument. Saved files key sub-layers by
        # attribute name, but a Dropout holds no weights: files that saved it under the
        # old name still load the same.
        self.branch_dropout = keras.layers.Dropout(
            self.dropout if self.residual_dropout else 0.0, dtype=self.dtype_policy,
            name="residual_dropout")

    def _residual(self, x, norm, sublayer, training):
        """x + sublayer(ln(x)) (pre-LN) or ln(x + sublayer(x)) (post-LN).

        `sublayer` returns (output, extra); extra (attention weights, a cache) is passed
        through.
        """
        if self.norm_first:
            branch, extra = sublayer(norm(x))
            return x + self.branch_dropout(branch, training=training), extra
        branch, extra = sublayer(x)
        return norm(x + self.branch_dropout(branch, training=training)), extra

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_dim=self.head_dim, ff_dim=self.ff_dim,
                      dropout=self.dropout, norm_first=self.norm_first,
                      layer_norm_epsilon=self.layer_norm_epsilon, mask_value=self.mask_value,
                      residual_dropout=self.residual_dropout,
                      feed_forward_dropout=self.feed_forward_dropout,
                      per_head_fans=self.per_head_fans)
        return config
