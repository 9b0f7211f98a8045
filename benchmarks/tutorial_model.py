"""The architecture of the TensorFlow tutorial "Neural machine translation with a
Transformer and Keras", rewritten in Keras 3 (`keras.ops` only, so it runs on any Keras
backend): post-LN layers around the stock `keras.layers.MultiHeadAttention`, a causal
mask in the decoder's self-attention, padding masks, a concatenated sine/cosine
positional encoding, a final Dense. One deliberate change: the tutorial passes
`key_dim=d_model` (every head as wide as the model); here `key_dim = D / H`, so that it
has the dimensions of the kit's model with the same config.

The benchmarks compare the kit's model with it: train_speed.py (TensorFlow or JAX) and
jax_gpu_check.py (JAX only).
"""

import keras
import numpy as np
from keras import ops


def tutorial_positional_encoding(length, depth):
    """(length, depth) float32: sines on the first half of the channels, cosines on the
    second half (the tutorial's layout; the kit interleaves them)."""
    half = depth // 2
    positions = np.arange(length)[:, None]  # (L, 1)
    rates = 1.0 / 10000.0 ** (np.arange(half) / half)  # (D/2,)
    angles = positions * rates[None, :]  # (L, D/2)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype("float32")


class TutorialEmbedding(keras.layers.Layer):
    """Token embedding times sqrt(D) plus the fixed positional encoding."""

    def __init__(self, vocab_size, max_length, model_dim, **kwargs):
        super().__init__(**kwargs)
        self.model_dim = model_dim
        self.embedding = keras.layers.Embedding(vocab_size, model_dim)
        self.table = tutorial_positional_encoding(max_length, model_dim)

    def call(self, token_ids):
        length = ops.shape(token_ids)[1]
        positions = ops.convert_to_tensor(self.table)[:length]  # (L, D)
        tokens = self.embedding(token_ids) * ops.cast(self.model_dim ** 0.5, "float32")
        return tokens + positions[None]  # (B, L, D)


class TutorialFeedForward(keras.layers.Layer):
    """x = LayerNorm(x + Dropout(Dense(Dense_relu(x))))."""

    def __init__(self, model_dim, ff_dim, dropout, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(ff_dim, activation="relu")
        self.outer = keras.layers.Dense(model_dim)
        self.dropout = keras.layers.Dropout(dropout)
        self.norm = keras.layers.LayerNormalization()

    def call(self, x, training=None):
        return self.norm(x + self.dropout(self.outer(self.inner(x)), training=training))


class TutorialEncoderLayer(keras.layers.Layer):
    def __init__(self, model_dim, num_heads, ff_dim, dropout, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads, key_dim=model_dim // num_heads, dropout=dropout)
        self.norm = keras.layers.LayerNormalization()
        self.feed_forward = TutorialFeedForward(model_dim, ff_dim, dropout)

    def call(self, x, padding_mask, training=None):
        attended = self.attention(query=x, value=x, value_mask=padding_mask, training=training)
        return self.feed_forward(self.norm(x + attended), training=training)


class TutorialDecoderLayer(keras.layers.Layer):
    def __init__(self, model_dim, num_heads, ff_dim, dropout, **kwargs):
        super().__init__(**kwargs)
        key_dim = model_dim // num_heads
        self.self_attention = keras.layers.MultiHeadAttention(num_heads, key_dim=key_dim,
                                                              dropout=dropout)
        self.self_norm = keras.layers.LayerNormalization()
        self.cross_attention = keras.layers.MultiHeadAttention(num_heads, key_dim=key_dim,
                                                               dropout=dropout)
        self.cross_norm = keras.layers.LayerNormalization()
        self.feed_forward = TutorialFeedForward(model_dim, ff_dim, dropout)

    def call(self, x, context, target_mask, source_mask, training=None):
        attended = self.self_attention(query=x, value=x, value_mask=target_mask,
                                       use_causal_mask=True, training=training)
        x = self.self_norm(x + attended)
        attended = self.cross_attention(query=x, value=context, value_mask=source_mask,
                                        training=training)
        x = self.cross_norm(x + attended)
        return self.feed_forward(x, training=training)


class TutorialTransformer(keras.Model):
    """`model((source_ids (B, S'), decoder_input_ids (B, T')))` -> logits (B, T', V), the
    interface of `Seq2SeqTransformer`, so that both train on the same batches.

    Padding masks are passed to attention explicitly as `value_mask` (the keys that may
    be looked at). The tutorial derives them from `mask_zero=True` embeddings, which also
    mask padded queries: rows that the loss ignores anyway. (Keras 3.15's
    MultiHeadAttention replaces a `query_mask` argument by the query's Keras mask, so
    there is no explicit way to pass that one.)
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        c = config
        layer_args = (c.model_dim, c.num_heads, c.ff_dim, c.dropout)
        self.source_embedding = TutorialEmbedding(c.source_vocab_size, c.max_source_length,
                                                  c.model_dim)
        self.target_embedding = TutorialEmbedding(c.target_vocab_size, c.max_target_length,
                                                  c.model_dim)
        self.source_dropout = keras.layers.Dropout(c.dropout)
        self.target_dropout = keras.layers.Dropout(c.dropout)
        self.encoder_layers = [TutorialEncoderLayer(*layer_args)
                               for _ in range(c.num_encoder_layers)]
        self.decoder_layers = [TutorialDecoderLayer(*layer_args)
                               for _ in range(c.num_decoder_layers)]
        self.final_layer = keras.layers.Dense(c.target_vocab_size)

    def call(self, inputs, training=None):
        source, target = inputs
        source_mask = ops.not_equal(source, 0)  # (B, S')
        target_mask = ops.not_equal(target, 0)  # (B, T')
        context = self.source_dropout(self.source_embedding(source), training=training)
        for layer in self.encoder_layers:
            context = layer(context, source_mask, training=training)  # (B, S', D)
        x = self.target_dropout(self.target_embedding(target), training=training)
        for layer in self.decoder_layers:
            x = layer(x, context, target_mask, source_mask, training=training)  # (B, T', D)
        return self.final_layer(x)  # (B, T', V)
