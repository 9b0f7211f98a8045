import keras
import numpy as np
from keras import ops

from kit.decoding import batched_beam_search, greedy_search, sample_search
from kit.layers import DecoderBlock, EncoderBlock, TokenAndPositionEmbedding
from kit.layers._register import register
from kit.models.config import TransformerConfig
from kit.runtime.signatures import (
    SOURCE_MASK,
    cache_names,
    layer_cache_names,
    layer_cross_names,
)


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

    def _encode_states(self, source_ids, training=None, return_attention_scores=False):
        """(B, S) ids -> (encoder output (B, S, D), source padding mask (B, S) float32),
        and each encoder layer's (B, H, S, S) self-attention weights when asked."""
        source_mask = ops.cast(ops.not_equal(source_ids, 0), "float32")  # (B, S)
        x = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        weights = []
        for block in self.encoder_blocks:
            x, w = block(x, padding_mask=source_mask, return_attention_scores=True,
                         training=training)
            weights.append(w)
        if self.config.norm_first:
            x = self.encoder_norm(x)
        return (x, source_mask, weights) if return_attention_scores else (x, source_mask)

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
        logits, weights = self._forward(inputs, training)
        return (logits, weights["cross"]) if return_attention_scores else logits

    def _forward(self, inputs, training=None):
        """Logits and every attention weight, stacked over layers (B, L, H, rows, cols)."""
        source_ids, target_ids = inputs
        context, source_mask, encoder_weights = self._encode_states(
            source_ids, training, return_attention_scores=True)
        x = self.embedding_dropout(self.target_embedding(target_ids), training=training)
        self_weights, cross_weights = [], []
        for block in self.decoder_blocks:
            x, self_w, cross_w = block(x, context, context_padding_mask=source_mask,
                                       return_attention_scores=True, training=training)
            self_weights.append(self_w)
            cross_weights.append(cross_w)
        return self._logits(x), {"encoder": ops.stack(encoder_weights, axis=1),
                                 "decoder": ops.stack(self_weights, axis=1),
                                 "cross": ops.stack(cross_weights, axis=1)}

    # -- decoding with a KV cache ----------------------------------------------------
    # The caches and the encoder's outputs are dicts of tensors named as the exported
    # signatures name them (kit/runtime/signatures.py), one K and one V tensor per decoder
    # layer: a runtime can bind each self-attention cache as both the input and the
    # output of `decode_step`.

    def cache_names(self):
        """The self-attention cache's tensors: self_key_0, self_value_0, self_key_1, ..."""
        return list(cache_names(self.config.num_decoder_layers))

    def cache_shapes(self, batch_size):
        """{name: shape} of the cache's tensors: each layer's keys and values, (B, H, T,
        Dh) each (a head's slots contiguous: `kit.layers._attention_core.attend_cached`
        reads them with no transpose)."""
        c = self.config
        shape = (batch_size, c.num_heads, c.max_target_length, c.head_dim)
        return {name: shape for name in self.cache_names()}

    def init_cache(self, batch_size):
        """An empty self-attention cache ({name: zeros}), in the compute dtype."""
        return {name: ops.zeros(shape, dtype=self.compute_dtype)
                for name, shape in self.cache_shapes(batch_size).items()}

    def encode(self, source_ids):
        """What the decoder needs from a source, computed once per sentence.

        Args:
            source_ids: (B, S') int ids, 0 for padding.

        Returns:
            dict with `source_mask` (B, S') float32, 1 for real tokens, and for every
            decoder layer i its cross-attention keys `cross_key_i` and values
            `cross_value_i`, each (B, H, S', Dh).
        """
        if not self.built:
            self.build()
        context, source_mask = self._encode_states(source_ids, training=False)
        encoded = {SOURCE_MASK: source_mask}
        for i, block in enumerate(self.decoder_blocks):
            key, value = layer_cross_names(i)
            encoded[key], encoded[value] = block.project_context(context)
        return encoded

    def decode_step(self, token_ids, position, cache, encoded):
        """One decoding step.

        Args:
            token_ids: (B, 1) the token at `position` (BOS at position 0).
            position: int scalar (Python or tensor), 0 <= position < T.
            cache: the dict from `init_cache` or the previous step.
            encoded: the dict returned by `encode`.

        Returns:
            `(logits (B, V) float32 for the token at position + 1, updated cache dict)`.
        """
        if not self.built:
            self.build()
        x = self.target_embedding(token_ids, start_position=position)  # (B, 1, D)
        updated = {}
        for i, block in enumerate(self.decoder_blocks):
            self_key, self_value = layer_cache_names(i)
            cross_key, cross_value = layer_cross_names(i)
            x, updated[self_key], updated[self_value] = block.call_with_cache(
                x, position, cache[self_key], cache[self_value],
                encoded[cross_key], encoded[cross_value],
                context_padding_mask=encoded[SOURCE_MASK])
        logits = self._logits(x)  # (B, 1, V)
        return logits[:, 0, :], updated

    def _max_new_tokens(self, max_new_tokens):
        limit = self.config.max_target_length - 1
        max_new_tokens = limit if max_new_tokens is None else max_new_tokens
        if not 0 < max_new_tokens <= limit:
            raise ValueError(f"`max_new_tokens` must be in [1, {limit}]. "
                             f"Received: max_new_tokens={max_new_tokens}")
        return max_new_tokens

    def greedy_decode(self, source_ids, bos_id, eos_id, max_new_tokens=None,
                      return_logits=False):
        """Greedy decoding with the KV cache, eagerly: the reference that exported files
        are checked against.

        Args:
            source_ids: (B, S') int array.
            bos_id, eos_id: the target's start and end token ids.
            max_new_tokens: the most tokens to generate; defaults to T - 1.
            return_logits: also return each step's float32 logits (B, max_new_tokens,
                V), 0 after the last step run: what verification compares files against.

        Returns:
            (B, max_new_tokens) int32 numpy array of generated ids; after a row's EOS
            the row holds 0 (padding). With `return_logits`, (ids, logits).
        """
        max_new_tokens = self._max_new_tokens(max_new_tokens)
        source_ids = np.asarray(source_ids, dtype=np.int32)
        step = self._step_function(self.encode(source_ids), len(source_ids))
        return greedy_search(step, len(source_ids), bos_id, eos_id, max_new_tokens,
                             return_logits)

    def sample_decode(self, source_ids, bos_id, eos_id, sampler, max_new_tokens=None,
                      return_logits=False):
        """As `greedy_decode`, with each next token drawn by `sampler` (a
        `kit.decoding.TopK` or `TopP`), as a bundle's `decode_ids(sampler=...)` draws."""
        max_new_tokens = self._max_new_tokens(max_new_tokens)
        source_ids = np.asarray(source_ids, dtype=np.int32)
        step = self._step_function(self.encode(source_ids), len(source_ids))
        return sample_search(step, len(source_ids), bos_id, eos_id, max_new_tokens, sampler,
                             return_logits)

    def beam_decode(self, source_ids, bos_id, eos_id, beam_size=4, length_penalty=1.0,
                    max_new_tokens=None, batch_size=64):
        """Beam search (`kit.decoding.batched_beam_search`) for each source: up to
        `batch_size` sources at a time, the live beams of all of them decoded as one
        batch whose caches are reordered as beams are kept.

        Returns:
            per source, the list of `kit.decoding.Hypothesis`, best first.
        """
        max_new_tokens = self._max_new_tokens(max_new_tokens)
        source_ids = np.asarray(source_ids, dtype=np.int32)
        results = []
        for start in range(0, len(source_ids), batch_size):
            chunk = source_ids[start:start + batch_size]
            encoded = self.encode(chunk)
            # Which source each row reads, and each row's cache: one row per source at
            # position 0, then one per live beam.
            state = {"cache": self.init_cache(len(chunk)), "encoded": encoded,
                     "sources": np.arange(len(chunk))}

            def step(tokens, position, state=state):
                logits, state["cache"] = self.decode_step(
                    np.asarray(tokens, np.int32)[:, None], position, state["cache"],
                    state["encoded"])
                return ops.convert_to_numpy(logits)

            def reorder(parents, state=state, encoded=encoded):
                state["cache"] = {name: ops.take(value, parents, axis=0)
                                  for name, value in state["cache"].items()}
                state["sources"] = state["sources"][parents]
                state["encoded"] = {name: ops.take(value, state["sources"], axis=0)
                                    for name, value in encoded.items()}

            results += batched_beam_search(step, reorder, len(chunk), bos_id, eos_id,
                                           max_new_tokens, beam_size, length_penalty)
        return results

    def _step_function(self, encoded, batch_size):
        """A `kit.decoding` step over `decode_step`, carrying the cache between calls."""
        state = {"cache": self.init_cache(batch_size)}

        def step(tokens, position):
            logits, state["cache"] = self.decode_step(
                np.asarray(tokens, np.int32)[:, None], position, state["cache"], encoded)
            return ops.convert_to_numpy(logits)

        return step

    def attention_weights(self, source_ids, target_input_ids):
        """Every attention weight of a decoded (or reference) pair, float32, stacked over
        layers: "encoder" (B, L, H, S', S'), the encoder's self-attention; "decoder"
        (B, L, H, T', T'), the decoder's masked self-attention; "cross" (B, L, H, T', S'),
        the encoder-decoder attention. Each row sums to one over what it may see."""
        _, weights = self._forward((source_ids, target_input_ids), training=False)
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
