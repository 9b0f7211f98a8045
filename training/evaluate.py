"""A Keras model's outputs on text pairs: greedy decoding or beam search with the KV
cache (`kit.metrics` scores them)."""

import numpy as np

from kit.tokenizers import source_ids


def greedy_translate(model, tokenizers, sources, batch_size=256):
    """Greedy-decode `sources` (list of str) with the model's cached decoding: encoded
    by `tokenizers.source`, decoded by `tokenizers.target` (a `TokenizerPair`)."""
    length = model.config.max_source_length
    ids = np.array([source_ids(tokenizers.source, s, length) for s in sources],
                   np.int32).reshape(-1, length)
    outputs = []
    for start in range(0, len(ids), batch_size):
        generated = model.greedy_decode(ids[start:start + batch_size],
                                        tokenizers.target.bos_id, tokenizers.target.eos_id)
        outputs.extend(tokenizers.target.decode(row.tolist()) for row in generated)
    return outputs


def translate(model, tokenizers, sources, beam_size=1, length_penalty=1.0, batch_size=64):
    """Decode `sources` (list of str) with a `TokenizerPair`: greedily for a beam of 1
    (the same outputs as a beam search of 1, faster), else the best hypothesis of a
    beam search of `beam_size`, `batch_size` sources at a time."""
    if beam_size == 1:
        return greedy_translate(model, tokenizers, sources)
    length = model.config.max_source_length
    ids = np.array([source_ids(tokenizers.source, s, length) for s in sources],
                   np.int32).reshape(-1, length)
    target = tokenizers.target
    beams = model.beam_decode(ids, target.bos_id, target.eos_id, beam_size=beam_size,
                              length_penalty=length_penalty, batch_size=batch_size)
    return [target.decode(hypotheses[0].ids) for hypotheses in beams]


def describe_decoding(beam_size, length_penalty=1.0):
    """What run.json and `evaluate` say of the decoding behind their metrics."""
    if beam_size == 1:
        return {"method": "greedy", "beam_size": 1}
    return {"method": "beam", "beam_size": beam_size, "length_penalty": length_penalty}
