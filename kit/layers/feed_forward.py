import keras

from kit import _checks
from kit.layers._register import register


@register
class FeedForward(keras.layers.Layer):
    """The position-wise feed-forward block: Dense(hidden, activation) -> dropout -> Dense(D).

    Args:
        hidden_dim: width of the inner layer (4*D in the original paper).
        dropout: dropout rate after the activation, in [0, 1).
        activation: activation of the inner layer.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        x: (B, T, D). training: enables dropout.

    Returns:
        (B, T, D).

    Example:
    >>> import numpy as np
    >>> tuple(FeedForward(hidden_dim=16)(np.ones((1, 3, 8))).shape)
    (1, 3, 8)
    """

    def __init__(self, hidden_dim, dropout=0.0, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = _checks.positive_int("hidden_dim", hidden_dim)
        self.dropout = _checks.rate("dropout", dropout)
        self.activation = keras.activations.get(activation)

    def build(self, x_shape):
        self.inner = keras.layers.Dense(self.hidden_dim, activation=self.activation,
                                        dtype=self.dtype_policy, name="inner")
        self.inner.build(x_shape)
        self.inner_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy,
                                                  name="inner_dropout")
        self.outer = keras.layers.Dense(x_shape[-1], dtype=self.dtype_policy, name="outer")
        self.outer.build(tuple(x_shape[:-1]) + (self.hidden_dim,))

    def call(self, x, training=None):
        hidden = self.inner_dropout(self.inner(x), training=training)  # (B, T, hidden)
        return self.outer(hidden)  # (B, T, D)

    def compute_output_shape(self, x_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, dropout=self.dropout,
                      activation=keras.activations.serialize(self.activation))
        return config
