import keras
from keras import ops

from kit import _checks
from kit.layers._attention_core import split_heads
from kit.layers._initializers import PerHeadShape, clone_initializer
from kit.layers._register import register


@register
class QKVProjection(keras.layers.Layer):
    """The query, key and value projections of attention: Q = x W^Q, K = c W^K, V = c W^V.

    For self-attention (`context=None`, so c = x) the three kernels are applied as one
    fused matmul. For encoder-decoder attention the query comes from `x` (the decoder)
    and the key and value from `context` (the encoder output).

    Args:
        num_heads: H, the number of attention heads.
        head_dim: Dh, the width of each head.
        use_bias: whether the projections add a bias.
        kernel_initializer: initializer of W^Q, W^K and W^V; each kernel draws with its
            own copy, so they do not start equal.
        per_head_fans: draw each (D, H*Dh) kernel as a (D, H, Dh) array, whose Keras
            fans (D*H in, D*Dh out) give Glorot limits about 3x smaller for D 64, H 4
            (see `PerHeadShape`). False, the matrix's fans, is what kit v0.1 used and
            what Keras 3.15's `MultiHeadAttention` uses.
        **kwargs: base `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        x: (B, T, D) queries' input.
        context: optional (B, S, Dc) keys' and values' input; defaults to `x`.

    Returns:
        `(q, k, v)`: q (B, T, H, Dh), k and v (B, S, H, Dh).

    Example:
    >>> import numpy as np
    >>> q, k, v = QKVProjection(num_heads=2, head_dim=4)(np.ones((1, 3, 8)))
    >>> tuple(q.shape)
    (1, 3, 2, 4)
    """

    def __init__(self, num_heads, head_dim, use_bias=True, kernel_initializer="glorot_uniform",
                 per_head_fans=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.head_dim = _checks.positive_int("head_dim", head_dim)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.per_head_fans = bool(per_head_fans)

    def build(self, x_shape, context_shape=None):
        width = self.num_heads * self.head_dim
        context_dim = (context_shape or x_shape)[-1]

        def kernel(name, rows):
            initializer = clone_initializer(self.kernel_initializer)
            if self.per_head_fans:
                initializer = PerHeadShape(initializer, (rows, self.num_heads, self.head_dim))
            return self.add_weight(name=name, shape=(rows, width), initializer=initializer)

        def bias(name):
            return self.add_weight(name=name, shape=(width,), initializer="zeros")

        self.query_kernel = kernel("query_kernel", x_shape[-1])  # W^Q
        self.key_kernel = kernel("key_kernel", context_dim)  # W^K
        self.value_kernel = kernel("value_kernel", context_dim)  # W^V
        if self.use_bias:
            self.query_bias, self.key_bias, self.value_bias = (
                bias("query_bias"), bias("key_bias"), bias("value_bias"))

    def _weight(self, variable):
        # These methods are also called outside __call__ (cached decoding), where Keras
        # does not autocast variables to the compute dtype for us.
        return ops.cast(variable, self.compute_dtype)

    def _project(self, inputs, which):
        out = ops.matmul(inputs, self._weight(getattr(self, f"{which}_kernel")))  # (B, L, H*Dh)
        if self.use_bias:
            out = out + self._weight(getattr(self, f"{which}_bias"))
        return split_heads(out, self.num_heads, self.head_dim)  # (B, L, H, Dh)

    def project_query(self, x):
        """(B, T, D) -> q (B, T, H, Dh)."""
        return self._project(x, "query")

    def project_key_value(self, context):
        """(B, S, Dc) -> (k, v), each (B, S, H, Dh)."""
        return self._project(context, "key"), self._project(context, "value")

    def call(self, x, context=None):
        if context is not None:
            return (self.project_query(x),) + self.project_key_value(context)
        kernel = ops.concatenate(
            [self._weight(self.query_kernel), self._weight(self.key_kernel),
             self._weight(self.value_kernel)], axis=-1)  # (D, 3*H*Dh)
        qkv = ops.matmul(x, kernel)  # (B, T, 3*H*Dh)
        if self.use_bias:
            qkv = qkv + ops.concatenate(
                [self._weight(self.query_bias), self._weight(self.key_bias),
                 self._weight(self.value_bias)], axis=-1)
        q, k, v = ops.split(qkv, 3, axis=-1)  # 3 x (B, T, H*Dh)
        return tuple(split_heads(t, self.num_heads, self.head_dim) for t in (q, k, v))

    def compute_output_shape(self, x_shape, context_shape=None):
        heads = (self.num_heads, self.head_dim)
        kv_shape = tuple((context_shape or x_shape)[:-1]) + heads
        return tuple(x_shape[:-1]) + heads, kv_shape, kv_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            per_head_fans=self.per_head_fans,
        )
        return config
