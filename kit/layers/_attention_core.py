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


def attend_cached(query, key, value, bias=None):
    """softmax(q K^T / sqrt(Dh) + bias) V for one decoding step (one query row per
    head), over keys and values in the decoding layout (B, H, L, Dh).

    Both products are written as a broadcast multiply and a sum (LiteRT MUL and SUM)
    rather than as matrix products: with one query row, BATCH_MATMUL runs one tiny GEMM
    per (batch, head) pair, and its per-call cost dominated. Measured on 2 cores, 1
    thread, 8 attentions over 64 slots: 54 -> 39 us at batch 1, 2,666 -> 1,644 us at
    batch 32. No TRANSPOSE touches a cache either: the one-row query and output are
    reshaped, which moves no data.

    Args:
        query: (B, 1, H, Dh).
        key, value: (B, H, L, Dh).
        bias: float32, broadcastable to (B, H, 1, L), or None.
    Returns:
        (B, 1, H, Dh) in the query's dtype.
    """
    batch, _, heads, head_dim = ops.shape(query)
    length = ops.shape(key)[2]
    query = query * ops.cast(1.0 / float(head_dim) ** 0.5, query.dtype)
    q = ops.reshape(query, (batch, heads, 1, head_dim))  # the same memory
    scores = ops.cast(ops.sum(q * key, axis=-1), "float32")  # (B, H, L)
    scores = ops.reshape(scores, (batch, heads, 1, length))
    if bias is not None:
        scores = scores + bias
    weights = ops.softmax(scores, axis=-1)  # (B, H, 1, L) float32
    weights = ops.cast(ops.reshape(weights, (batch, heads, length, 1)), value.dtype)
    output = ops.sum(weights * value, axis=2)  # (B, H, Dh)
    return ops.reshape(output, (batch, 1, heads, head_dim))


def to_cache_layout(x):
    """(B, L, H, Dh) keys or values -> (B, H, L, Dh), the decoding layout: a head's
    slots contiguous. For one position (L = 1) a reshape, which moves no data."""
    batch, length, heads, head_dim = ops.shape(x)
    if length == 1:
        return ops.reshape(x, (batch, heads, 1, head_dim))
    return ops.transpose(x, (0, 2, 1, 3))


def split_heads(x, num_heads, head_dim):
    """(B, L, H*Dh) -> (B, L, H, Dh)."""
    return ops.reshape(x, (ops.shape(x)[0], -1, num_heads, head_dim))


def merge_heads(x):
    """(B, L, H, Dh) -> (B, L, H*Dh)."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], -1, shape[2] * shape[3]))

