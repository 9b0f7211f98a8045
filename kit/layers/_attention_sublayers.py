"""The sub-layers both attention layers build: the Q/K/V projection, the output
projection and the dropout on the attention weights."""

import keras

from kit.layers._initializers import output_kernel_initializer
from kit.layers.qkv_projection import QKVProjection


def build_attention_sublayers(layer, x_shape, context_shape=None):
    """Creates and builds `layer.qkv`, `layer.output_dense` and `layer.attention_dropout`
    from `layer`'s num_heads, head_dim, dropout, kernel_initializer, per_head_fans and
    dtype policy. `context_shape` None: self-attention (K and V from x)."""
    layer.qkv = QKVProjection(layer.num_heads, layer.head_dim,
                              kernel_initializer=layer.kernel_initializer,
                              per_head_fans=layer.per_head_fans, dtype=layer.dtype_policy,
                              name="qkv")
    layer.qkv.build(x_shape, context_shape)
    layer.output_dense = keras.layers.Dense(
        x_shape[-1],
        kernel_initializer=output_kernel_initializer(
            layer.kernel_initializer, layer.per_head_fans, layer.num_heads, layer.head_dim,
            x_shape[-1]),
        dtype=layer.dtype_policy, name="output_dense")
    layer.output_dense.build(tuple(x_shape[:-1]) + (layer.num_heads * layer.head_dim,))
    layer.attention_dropout = keras.layers.Dropout(layer.dropout, dtype=layer.dtype_policy,
                                                   name="attention_dropout")
