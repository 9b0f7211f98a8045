"""tf.data input pipeline: tokenize, truncate, shuffle, bucket by length, shift, prefetch.

Each element is `((source_ids, decoder_input_ids), labels, label_weights)`:
source_ids (B, S') with S' <= S, decoder inputs `[BOS, y1 .. yn]` and labels
`[y1 .. yn, EOS]` (B, T') with T' <= T, and weights 1.0 on real labels, 0.0 on padding.
Batches hold sequences of similar length, so little compute goes to padding.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kit.tokenizers import BOS_ID, EOS_ID


@dataclass
class EncodedSplit:
    """Token ids of one split, already truncated to the model's lengths."""

    sources: list  # list of lists of ids, no BOS/EOS, each len <= S
    targets: list  # list of lists of ids, no BOS/EOS, each len <= T - 1
    source_truncated: int  # how many sources were cut to S
    target_truncated: int  # how many targets were cut to T - 1

    def __len__(self):
        return len(self.sources)


def encode_split(pairs, tokenizers, max_source_length, max_target_length):
    """Tokenize (source, target) pairs, each side with its tokenizer of the
    `kit.tokenizers.TokenizerPair`; count what had to be truncated."""
    return truncate_split(tokenize(pairs, tokenizers), max_source_length, max_target_length)


def tokenize(pairs, tokenizers):
    """[(source ids, target ids), ...] of (source, target) pairs, whole: training
    chooses S and T from these lengths, then truncates the same ids."""
    return [(tokenizers.source.encode(source), tokenizers.target.encode(target))
            for source, target in pairs]


def truncate_split(token_ids, max_source_length, max_target_length):
    """The `EncodedSplit` of `tokenize`'s ids cut to S and T, counting what was cut."""
    sources, targets = [], []
    source_truncated = target_truncated = 0
    for source_ids, target_ids in token_ids:
        source_truncated += len(source_ids) > max_source_length
        target_truncated += len(target_ids) > max_target_length - 1  # BOS or EOS takes one slot
        sources.append(source_ids[:max_source_length])
        targets.append(target_ids[: max_target_length - 1])
    return EncodedSplit(sources, targets, source_truncated, target_truncated)


def _ragged(rows):
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(flat, lengths)


def _shift(source, target):
    decoder_input = tf.concat([[BOS_ID], target], axis=0)
    labels = tf.concat([target, [EOS_ID]], axis=0)
    return source, decoder_input, labels


def _to_model_inputs(source, decoder_input, labels):
    weights = tf.cast(tf.not_equal(labels, 0), tf.float32)
    return (source, decoder_input), labels, weights


def bucket_boundaries(max_length, width=8):
    """Upper bounds of the length buckets: 9, 17, 25, ... below max_length + 1."""
    return list(range(width + 1, max_length + 1, width))


def _pad_to(tensor, length):
    return tf.pad(tensor, [[0, 0], [0, length - tf.shape(tensor)[1]]])


def make_dataset(split, batch_size, *, shuffle, seed=0, bucket_width=8, static_shapes=None):
    """The tf.data pipeline over one `EncodedSplit`, one pass (one epoch).

    Args:
        split: an `EncodedSplit`.
        batch_size: sentences per batch.
        shuffle: shuffle the whole split (training) or keep the order (evaluation).
        seed: the shuffle seed; the training loop passes seed + epoch so that each epoch
            has its own order and a resumed run sees the orders an uninterrupted one saw.
        bucket_width: source lengths within one bucket differ by less than this; None
            batches in shuffled order and pads to each batch's longest sequence (the TF
            tutorial's pipeline, kept for comparison).
        static_shapes: None, or `(S, T)`: pad sources to their bucket's bound (at most S)
            and targets to T, so that only a few distinct shapes exist (what XLA wants).
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be positive. Received: batch_size={batch_size}")
    dataset = tf.data.Dataset.from_tensor_slices((_ragged(split.sources), _ragged(split.targets)))
    if shuffle:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=False)
    dataset = dataset.map(_shift, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if bucket_width is None:
        if static_shapes:
            raise ValueError("`static_shapes` needs buckets; received bucket_width=None")
        dataset = dataset.padded_batch(batch_size)
    else:
        longest = static_shapes[0] if static_shapes else max(len(s) for s in split.sources)
        boundaries = bucket_boundaries(longest, bucket_width)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda source, decoder_input, labels: tf.shape(source)[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        )
    if static_shapes:
        bounds = tf.constant([b - 1 for b in boundaries] + [static_shapes[0]], tf.int32)
        target_length = static_shapes[1]

        def pad_static(source, decoder_input, labels):
            bucket = tf.reduce_min(tf.where(bounds >= tf.shape(source)[1]))
            return (_pad_to(source, tf.gather(bounds, bucket)),
                    _pad_to(decoder_input, target_length), _pad_to(labels, target_length))

        dataset = dataset.map(pad_static, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(_to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
