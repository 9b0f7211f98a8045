"""The kit's one decoding loop: output tokens chosen from a step function's logits.

A *step* is any function

    step(token_ids, position) -> logits
        token_ids: (B,) int32, each row's token at `position` (BOS at position 0)
        position:  int, the same for every row
        logits:    (B, V) float32, the scores of each row's token at position + 1

The Keras model (`Seq2SeqTransformer.greedy_decode`, a step over `decode_step` with a
KV cache), export's verification and the device runtime (`kit.runtime.Bundle`, a step
over the LiteRT `decode_step` signature) all decode through this module, so they
cannot disagree about where decoding starts, what it feeds back and where it stops.

numpy only: this runs on the device.
"""

import numpy as np


def greedy_search(step, batch_size, bos_id, eos_id, max_new_tokens, return_logits=False):
    """Greedy decoding: BOS at position 0, then each row's argmax fed back at the next
    position, until every row has produced EOS or `max_new_tokens` tokens were made.

    Args:
        step: `step(token_ids (B,), position) -> logits (B, V)`.
        batch_size: B.
        bos_id, eos_id: the target's start and end token ids.
        max_new_tokens: the most tokens to generate (T - 1 for a cache of T slots).
        return_logits: also return every step's logits.

    Returns:
        (B, max_new_tokens) int32 ids; a row holds its EOS and then 0 (padding). With
        `return_logits`, also (B, max_new_tokens, V) float32 logits, 0 after the last
        step that ran.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens < 1:
        raise ValueError("`max_new_tokens` must be a positive integer. "
                         f"Received: max_new_tokens={max_new_tokens!r}")
    output = np.zeros((batch_size, max_new_tokens), np.int32)
    finished = np.zeros(batch_size, bool)
    tokens = np.full(batch_size, bos_id, np.int32)
    all_logits = None
    for position in range(max_new_tokens):
        logits = np.asarray(step(tokens, position), np.float32)  # (B, V)
        if return_logits:
            if all_logits is None:
                all_logits = np.zeros((batch_size, max_new_tokens, logits.shape[-1]),
                                      np.float32)
            all_logits[:, position] = logits
        next_ids = np.argmax(logits, axis=-1).astype(np.int32)  # (B,)
        next_ids[finished] = 0
        output[:, position] = next_ids
        finished |= next_ids == eos_id
        if finished.all():
            break
        tokens = next_ids
    return (output, all_logits) if return_logits else output


def until_eos(ids, eos_id):
    """One row of `greedy_search` as a list: up to and including EOS, or all of it."""
    ids = [int(t) for t in ids]
    return ids[:ids.index(eos_id) + 1] if eos_id in ids else ids
