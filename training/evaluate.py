"""Task metrics of a Keras model on text pairs: greedy decoding with the KV cache."""

import numpy as np

from kit.tokenizer import source_ids


def greedy_translate(model, tokenizer, sources, batch_size=256):
    """Greedy-decode `sources` (list of str) with the model's cached decoding."""
    length = model.config.max_source_length
    ids = np.array([source_ids(tokenizer, s, length) for s in sources], np.int32).reshape(-1, length)
    outputs = []
    for start in range(0, len(ids), batch_size):
        generated = model.greedy_decode(ids[start:start + batch_size], tokenizer.bos_id,
                                        tokenizer.eos_id)
        outputs.extend(tokenizer.decode(row.tolist()) for row in generated)
    return outputs


def exact_match(hypotheses, references):
    """Percentage of hypotheses equal to their reference, character for character."""
    if not references:
        return 0.0
    return 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(references)


def bleu_and_chrf(hypotheses, references):
    """Corpus BLEU and chrF, through sacrebleu (the field's reference implementation)."""
    import sacrebleu

    return (sacrebleu.corpus_bleu(hypotheses, [references]).score,
            sacrebleu.corpus_chrf(hypotheses, [references]).score)


def task_metrics(metric, hypotheses, references):
    """{"exact_match": %} for the built-in data; BLEU and chrF (and exact match) otherwise."""
    values = {"exact_match": exact_match(hypotheses, references)}
    if metric == "bleu":
        values["bleu"], values["chrf"] = bleu_and_chrf(hypotheses, references)
    return values
