import keras
import numpy as np
from keras import ops

from kit import _checks
from kit.layers._register import register


def sinusoidal_positions(positions, dim):
    """(L,) int positions -> (L, dim) float32 encodings of "Attention Is All You Need"
    section 3.5: sines on the even channels, cosines on the odd ones, wavelengths from
    2*pi to 10000*2*pi.

    Computed from the positions rather than looked up in a stored table: an exported
    file then carries D/2 rates instead of a (max_length, D) float table, and a decode
    step computes the one row it needs.
    """
    half = (dim + 1) // 2
    rates = np.power(10000.0, -np.arange(0, dim, 2, dtype=np.float64) / dim)  # (half,)
    angles = ops.expand_dims(ops.cast(positions, "float32"), 1) * rates.astype(np.float32)
    pairs = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)  # (L, half, 2)
    return ops.reshape(pairs, (-1, 2 * half))[:, :dim]  # (L, D)


@register
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding scaled by sqrt(D), plus a sinusoidal or learned position embedding.

    Args:
        vocab_size: number of token ids; id 0 is padding.
        max_length: the longest sequence (positions 0 .. max_length - 1).
        embedding_dim: D.
        position_encoding: "sinusoidal" (fixed) or "learned".
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        token_ids: (B, L) integer ids.
        start_position: the position of `token_ids[:, 0]`, 0 unless decoding with a
            cache, where a single token sits at position t. Python int or int tensor;
            start_position + L must not exceed max_length.

    Returns:
        (B, L, D).

    Example:
    >>> layer = TokenAndPositionEmbedding(vocab_size=10, max_length=6, embedding_dim=8)
    >>> tuple(layer(np.array([[4, 5, 0]])).shape)
    (1, 3, 8)
    """

    def __init__(self, vocab_size, max_length, embedding_dim, position_encoding="sinusoidal",
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = _checks.positive_int("vocab_size", vocab_size)
        self.max_length = _checks.positive_int("max_length", max_length)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        self.position_encoding = _checks.one_of("position_encoding", position_encoding,
                                                ("sinusoidal", "learned"))

    def build(self, token_ids_shape):
        self.token_embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, dtype=self.dtype_policy, name="token_embedding")
        self.token_embedding.build(token_ids_shape)
        if self.position_encoding == "learned":
            self.position_embedding = keras.layers.Embedding(
                self.max_length, self.embedding_dim, dtype=self.dtype_policy,
                name="position_embedding")
            self.position_embedding.build((self.max_length,))

    def call(self, token_ids, start_position=0):
        length = ops.shape(token_ids)[1]
        positions = ops.cast(start_position, "int32") + ops.arange(length, dtype="int32")  # (L,)
        if self.position_encoding == "learned":
            position_vectors = self.position_embedding(positions)  # (L, D)
        else:
            position_vectors = ops.cast(sinusoidal_positions(positions, self.embedding_dim),
                                        self.compute_dtype)  # (L, D)
        scale = ops.cast(float(self.embedding_dim) ** 0.5, self.compute_dtype)
        tokens = self.token_embedding(token_ids) * scale  # (B, L, D)
        return tokens + ops.expand_dims(position_vectors, 0)

    def compute_output_shape(self, token_ids_shape):
        return tuple(token_ids_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, max_length=self.max_length,
                      embedding_dim=self.embedding_dim,
                      position_encoding=self.position_encoding)
        return config
