"""Scaled dot-product attention with additive float masks, shared by the attention layers.

Masks are additive biases added to float32 scores, never boolean selects: the softmax
stays float32 under mixed precision (no float16 overflow), and the exported graph keeps
to ops that every LiteRT quantization mode accepts (int16x8 fails on LOGICAL_AND and
SELECT_V2).
"""

from keras import ops

from kit._checks import MASK_VALUE, MIN_MASK_VALUE  # noqa: F401  (the layers' constants)


def padding_bias(padding_mask, mask_value=MASK_VALUE):
    """(B, S) mask, 1/True for real tokens -> (B, 1, 1, S) float32 additive bias."""
    keep = ops.cast(padding_mask, "float32")
    return ops.expand_dims(ops.expand_dims((1.0 - keep) * mask_value, 1), 1)  # (B, 1, 1, S)


def causal_bias(length, mask_value=MASK_VALUE):
    """(1, 1, T, T) float32 bias that hides every key after the query's position."""
    query_pos = ops.expand_dims(ops.arange(length), 1)  # (T, 1)
    key_pos = ops.expand_dims(ops.arange(length), 0)  # (1, T)
    future = ops.cast(ops.greater(key_pos, query_pos), "float32")  # (T, T)
    return ops.reshape(future * mask_value, (1, 1, length, length))


def cache_bias(position, cache_length, mask_value=MASK_VALUE):
    """(1, 1, 1, T) float32 bias that hides cache slots after `position` (not yet written)."""
    slots = ops.arange(cache_length)  # (T,)
    unwritten = ops.cast(ops.greater(slots, ops.cast(position, slots.dtype)), "float32")
    return ops.reshape(unwritten * mask_value, (1, 1, 1, cache_length))


def attend(query, key, value, bias=None, dropout_layer=None, training=None):
    """softmax(Q K^T / sqrt(Dh) + bias) V.

    Args:
        query: (B, T, H, Dh). key, value: (B, S, H, Dh).
        bias: float32, broadcastable to (B, H, T, S), or None.
    Returns:
        (output (B, T, H, Dh) in the query's dtype, weights (B, H, T, S) float32).
    """
    head_dim = ops.shape(query)[-1]
    # Scaling Q before the product keeps float16 scores small.
    query = query * ops.cast(1.0 / float(head_dim) ** 0.5, query.dtype)
    q = ops.transpose(query, (0, 2, 1, 3))  # (B, H, T, Dh)
    k = ops.transpose(key, (0, 2, 3, 1))  # (B, H, Dh, S)
    v = ops.transpose(value, (0, 2, 1, 3))  # (B, H, S, Dh)
    scores = ops.cast(ops.matmul(q, k), "float32")  # (B, H, T, S)
    if bias is not None:
        scores = scores + bias
    weights = ops.softmax(scores, axis=-1)  # (B, H, T, S) float32
    mixed = ops.cast(weights, value.dtype)
    if dropout_layer is not None:
        mixed = dropout_layer(mixed, training=training)
    output = ops.matmul(mixed, v)  # (B, H, T, Dh)
    return ops.transpose(output, (0, 2, 1, 3)), weights  # (B, T, H, Dh)


def attend_cached(query, key, value_t, bias=None):
    """softmax(Q K^T / sqrt(Dh) + bias) V for one decoding step, over keys and values
    in the decoding layout, which both products read with no transpose.

    LiteRT's BATCH_MATMUL wants its right-hand side as (..., N, K), the layout of B^T
    (adj_y), and transposes it on every call otherwise. So the keys are stored (B, H,
    S, Dh) and the values transposed, (B, H, Dh, S): both einsums below convert to
    BATCH_MATMUL with adj_y and no TRANSPOSE op touches a cache.

    Args:
        query: (B, 1, H, Dh).
        key: (B, H, S, Dh). value_t: (B, H, Dh, S).
        bias: float32, broadcastable to (B, H, 1, S), or None.
    Returns:
        (B, 1, H, Dh) in the query's dtype.
    """
    head_dim = ops.shape(query)[-1]
    query = query * ops.cast(1.0 / float(head_dim) ** 0.5, query.dtype)
    q = ops.transpose(query, (0, 2, 1, 3))  # (B, H, 1, Dh)
    scores = ops.cast(ops.einsum("bhqd,bhkd->bhqk", q, key), "float32")  # (B, H, 1, S)
    if bias is not None:
        scores = scores + bias
    weights = ops.cast(ops.softmax(scores, axis=-1), value_t.dtype)
    output = ops.einsum("bhqk,bhdk->bhqd", weights, value_t)  # (B, H, 1, Dh)
    return ops.transpose(output, (0, 2, 1, 3))  # (B, 1, H, Dh)


def to_key_layout(x):
    """(B, L, H, Dh) keys -> (B, H, L, Dh), the decoding layout of keys."""
    return ops.transpose(x, (0, 2, 1, 3))


def to_value_layout(x):
    """(B, L, H, Dh) values -> (B, H, Dh, L), the decoding layout of values."""
    return ops.transpose(x, (0, 2, 3, 1))


def split_heads(x, num_heads, head_dim):
    """(B, L, H*Dh) -> (B, L, H, Dh)."""
    return ops.reshape(x, (ops.shape(x)[0], -1, num_heads, head_dim))


def merge_heads(x):
    """(B, L, H, Dh) -> (B, L, H*Dh)."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], -1, shape[2] * shape[3]))

