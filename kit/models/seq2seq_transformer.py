import keras
import numpy as np
from keras import ops

from kit.layers import DecoderBlock, EncoderBlock, TokenAndPositionEmbedding
from kit.layers._register import register
from kit.models.config import TransformerConfig


@register
class Seq2SeqTransformer(keras.Model):
    """An encoder-decoder transformer built from the kit's layers.

    Two ways to run it:
    - training: `model((source_ids, target_input_ids))` -> float32 logits (B, T, V) over
      whole targets at once (teacher forcing, causal masking);
    - decoding: `encode(source_ids)` once per sentence, then `decode_step` once per token
      with an explicit self-attention KV cache that goes in and comes out. There is no
      Python-side state, so both functions export to fixed-shape LiteRT signatures.

    Token id 0 is padding in both sequences. The source padding mask is derived from it.

    Args:
        config: a `TransformerConfig` (or its dict form).
        **kwargs: base `keras.Model` arguments.

    Example:
    >>> from kit.models import Seq2SeqTransformer, preset
    >>> model = Seq2SeqTransformer(preset("tiny"))
    >>> logits = model((np.array([[5, 6, 7, 0]]), np.array([[2, 8, 9]])))
    >>> tuple(logits.shape)
    (1, 3, 32)
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = TransformerConfig.from_dict(config)
        if not isinstance(config, TransformerConfig):
            raise ValueError("`config` must be a TransformerConfig or a dict. "
                             f"Received: config={config!r}")
        self.config = config
        c = config
        block_args = dict(num_heads=c.num_heads, head_dim=c.head_dim, ff_dim=c.ff_dim,
                          dropout=c.dropout, norm_first=c.norm_first,
                          layer_norm_epsilon=c.layer_norm_epsilon,
                          mask_value=c.attention_mask_value,
                          residual_dropout=c.residual_dropout,
                          feed_forward_dropout=c.feed_forward_dropout,
                          per_head_fans=c.per_head_fans, dtype=self.dtype_policy)
        self.source_embedding = TokenAndPositionEmbedding(
            c.source_vocab_size, c.max_source_length, c.model_dim, c.position_encoding,
            dtype=self.dtype_policy, name="source_embedding")
        self.target_embedding = TokenAndPositionEmbedding(
            c.target_vocab_size, c.max_target_length, c.model_dim, c.position_encoding,
            dtype=self.dtype_policy, name="target_embedding")
        self.embedding_dropout = keras.layers.Dropout(c.dropout, dtype=self.dtype_policy,
                                                      name="embedding_dropout")
        self.encoder_blocks = [EncoderBlock(**block_args, name=f"encoder_block_{i}")
                               for i in range(c.num_encoder_layers)]
        self.decoder_blocks = [DecoderBlock(**block_args, name=f"decoder_block_{i}")
                               for i in range(c.num_decoder_layers)]
        # Pre-LN leaves each residual stream un-normalised: one last norm per side.
        if c.norm_first:
            self.encoder_norm = keras.layers.LayerNormalization(
                epsilon=c.layer_norm_epsilon, dtype=self.dtype_policy, name="encoder_norm")
            self.decoder_norm = keras.layers.LayerNormalization(
                epsilon=c.layer_norm_epsilon, dtype=self.dtype_policy, name="decoder_norm")
        # float32 whatever the policy: the logits feed a softmax and a loss.
        self.output_projection = keras.layers.Dense(c.target_vocab_size, dtype="float32",
                                                    name="output_projection")

    def build(self, inputs_shape=None):
        c = self.config
        source_shape, target_shape = (None, c.max_source_length), (None, c.max_target_length)
        hidden_source = source_shape + (c.model_dim,)
        hidden_target = target_shape + (c.model_dim,)
        self.source_embedding.build(source_shape)
        self.target_embedding.build(target_shape)
        for block in self.encoder_blocks:
            block.build(hidden_source)
        for block in self.decoder_blocks:
            block.build(hidden_target, hidden_source)
        if c.norm_first:
            self.encoder_norm.build(hidden_source)
            self.decoder_norm.build(hidden_target)
        self.output_projection.build(hidden_target)
        self.built = True

    # -- training -------------------------------------------------------------------

    def _encode_states(self, source_ids, training=None):
        """(B, S) ids -> (encoder output (B, S, D), source padding mask (B, S) float32)."""
        source_mask = ops.cast(ops.not_equal(source_ids, 0), "float32")  # (B, S)
        x = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=source_mask, training=training)
        if self.config.norm_first:
            x = self.encoder_norm(x)
        return x, source_mask

    def _logits(self, x):
        if self.config.norm_first:
            x = self.decoder_norm(x)
        return self.output_projection(x)  # float32

    def call(self, inputs, training=None, return_attention_scores=False):
        """`inputs = (source_ids (B, S'), target_input_ids (B, T'))` -> logits (B, T', V).

        S' <= S and T' <= T: training batches may be shorter than the maximum lengths.
        With `return_attention_scores=True` also returns the cross-attention weights of
        every decoder layer, stacked (B, L, H, T', S') float32.
        """
        source_ids, target_ids = inputs
        context, source_mask = self._encode_states(source_ids, training)
        x = self.embedding_dropout(self.target_embedding(target_ids), training=training)
        cross_weights = []
        for block in self.decoder_blocks:
            x, weights = block(x, context, context_padding_mask=source_mask,
                               return_attention_scores=True, training=training)
            cross_weights.append(weights)
        logits = self._logits(x)
        if return_attention_scores:
            return logits, ops.stack(cross_weights, axis=1)  # (B, L, H, T', S')
        return logits

    # -- decoding with a KV cache ----------------------------------------------------

    def cache_shape(self, batch_size):
        """(B, L, 2, T, H, Dh): keys [:, :, 0] and values [:, :, 1] of every decoder layer."""
        c = self.config
        return (batch_size, c.num_decoder_layers, 2, c.max_target_length, c.num_heads,
                c.head_dim)

    def init_cache(self, batch_size):
        """An empty self-attention cache, in the model's compute dtype."""
        return ops.zeros(self.cache_shape(batch_size), dtype=self.compute_dtype)

    def encode(self, source_ids):
        """What the decoder needs from a source, computed once per sentence.

        Args:
            source_ids: (B, S') int ids, 0 for padding.

        Returns:
            dict with `source_mask` (B, S') float32, 1 for real tokens, and `cross_cache`
            (B, L, 2, S', H, Dh): every decoder layer's cross-attention keys [:, :, 0]
            and values [:, :, 1].
        """
        if not self.built:
            self.build()
        context, source_mask = self._encode_states(source_ids, training=False)
        layers = [ops.stack(block.project_context(context), axis=1)  # (B, 2, S', H, Dh)
                  for block in self.decoder_blocks]
        return {"source_mask": source_mask, "cross_cache": ops.stack(layers, axis=1)}

    def decode_step(self, token_ids, position, self_cache, encoded):
        """One decoding step.

        Args:
            token_ids: (B, 1) the token at `position` (BOS at position 0).
            position: int scalar (Python or tensor), 0 <= position < T.
            self_cache: (B, L, 2, T, H, Dh), from `init_cache` or the previous step.
            encoded: the dict returned by `encode`.

        Returns:
            `(logits (B, V) float32 for the token at position + 1, updated self_cache)`.
        """
        if not self.built:
            self.build()
        source_mask, cross_cache = encoded["source_mask"], encoded["cross_cache"]
        x = self.target_embedding(token_ids, start_position=position)  # (B, 1, D)
        # unstack, not self_cache[:, i]: LiteRT's STRIDED_SLICE takes at most 5-D tensors
        # (the int8 calibrator refuses the 6-D cache), UNPACK takes any rank.
        self_caches = ops.unstack(self_cache, axis=1)  # L x (B, 2, T, H, Dh)
        cross_caches = ops.unstack(cross_cache, axis=1)  # L x (B, 2, S, H, Dh)
        new_caches = []
        for block, layer_cache, layer_cross in zip(self.decoder_blocks, self_caches, cross_caches):
            x, cache = block.call_with_cache(
                x, position, layer_cache, layer_cross[:, 0], layer_cross[:, 1],
                context_padding_mask=source_mask)
            new_caches.append(cache)  # (B, 2, T, H, Dh)
        logits = self._logits(x)  # (B, 1, V)
        return logits[:, 0, :], ops.stack(new_caches, axis=1)  # (B, V), (B, L, 2, T, H, Dh)

    def greedy_decode(self, source_ids, bos_id, eos_id, max_length=None, return_logits=False):
        """Greedy decoding with the KV cache, eagerly: the reference that exported files
        are checked against.

        Args:
            source_ids: (B, S') int array.
            bos_id, eos_id: the target's start and end token ids.
            max_length: the most tokens to generate; defaults to T - 1.
            return_logits: also return each step's float32 logits (B, max_length, V),
                0 after the last step run: what verification compares files against.

        Returns:
            (B, max_length) int32 numpy array of generated ids; after a row's EOS the
            row holds 0 (padding). With `return_logits`, (ids, logits).
        """
        max_length = max_length or self.config.max_target_length - 1
        if not 0 < max_length < self.config.max_target_length:
            raise ValueError(f"`max_length` must be in [1, {self.config.max_target_length - 1}]. "
                             f"Received: max_length={max_length}")
        source_ids = np.asarray(source_ids, dtype=np.int32)
        batch = source_ids.shape[0]
        encoded = self.encode(source_ids)
        cache = self.init_cache(batch)
        tokens = np.full((batch, 1), bos_id, dtype=np.int32)
        output = np.zeros((batch, max_length), dtype=np.int32)
        finished = np.zeros(batch, dtype=bool)
        all_logits = np.zeros((batch, max_length, self.config.target_vocab_size), np.float32)
        for position in range(max_length):
            logits, cache = self.decode_step(tokens, position, cache, encoded)
            all_logits[:, position] = ops.convert_to_numpy(logits)
            next_ids = np.argmax(all_logits[:, position], axis=-1).astype(np.int32)
            next_ids[finished] = 0
            output[:, position] = next_ids
            finished |= next_ids == eos_id
            if finished.all():
                break
            tokens = next_ids[:, None]
        return (output, all_logits) if return_logits else output

    def cross_attention_weights(self, source_ids, target_input_ids):
        """(B, L, H, T', S') float32: which source tokens each target position attended
        to, in every decoder layer and head, for a decoded (or reference) target."""
        _, weights = self((source_ids, target_input_ids), training=False,
                          return_attention_scores=True)
        return weights

    def get_config(self):
        # keras.Model's base config carries name and trainable; ours adds the model's shape.
        return {"name": self.name, "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dtype = config.pop("dtype", None)
        if dtype is not None:
            config["dtype"] = keras.dtype_policies.deserialize(dtype)
        return cls(**config)
