"""Initializer helpers shared by the attention layers."""

import keras
from keras import ops

from kit.layers._register import register


def clone_initializer(initializer):
    """A fresh copy of `initializer`, one per weight.

    A Keras initializer seeded with None draws its seed once, at construction, and then
    returns the same values on every call: one instance shared by W^Q, W^K and W^V
    would start them equal. A copy made from the config draws a new seed (as
    `keras.layers.MultiHeadAttention`'s `_clone_initializer`). An initializer seeded
    with an integer stays seeded, so its copies still agree: that is what a seed asks.
    """
    initializer = keras.initializers.get(initializer)
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


@register
class PerHeadShape(keras.initializers.Initializer):
    """Draws a 2-D attention kernel as a 3-D per-head array, then reshapes it.

    Fan-based initializers (Glorot, He, LeCun) then take the fans of a 3-D shape the
    Keras way, its first axis as a receptive field: for W^Q (D, H, Dh), fan_in = D*H and
    fan_out = D*Dh, a Glorot limit sqrt(10) ~ 3.2 times smaller than the (D, H*Dh)
    matrix's for D 64, H 4, Dh 16 (sqrt(2.5) for the output kernel, drawn as (H, Dh, D)).
    Keras 3.15's `MultiHeadAttention` does NOT draw this way: its EinsumDense kernels
    are given their input and output axes, hence the matrix's fans, as `glorot_uniform`
    on our matrices.

    Args:
        initializer: the initializer to draw with (a fresh copy is taken).
        per_head_shape: the 3-D shape to draw, e.g. (D, H, Dh); its size must equal the
            kernel's.
    """

    def __init__(self, initializer, per_head_shape):
        self.initializer = clone_initializer(initializer)
        self.per_head_shape = tuple(int(n) for n in per_head_shape)

    def __call__(self, shape, dtype=None):
        values = self.initializer(self.per_head_shape, dtype=dtype)  # e.g. (D, H, Dh)
        return ops.reshape(values, tuple(shape))  # e.g. (D, H*Dh)

    def get_config(self):
        return {"initializer": keras.initializers.serialize(self.initializer),
                "per_head_shape": list(self.per_head_shape)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["initializer"] = keras.initializers.deserialize(config["initializer"])
        return cls(**config)



def output_kernel_initializer(initializer, per_head_fans, num_heads, head_dim, model_dim):
    """The attention output kernel's (H*Dh, D) initializer: its own copy of `initializer`,
    drawn as (H, Dh, D) with `per_head_fans`."""
    initializer = clone_initializer(initializer)
    if per_head_fans:
        return PerHeadShape(initializer, (num_heads, head_dim, model_dim))
    return initializer
