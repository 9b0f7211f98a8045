"""Task metrics of decoded text against references, for every kind of task.

    exact_match   % of outputs equal to one of their references
    cer           character error rate, %: edit distance over characters / reference length
    wer           word error rate, %: edit distance over whitespace-separated words / words
    bleu, chrf    corpus BLEU and chrF (sacrebleu, the field's reference implementation)

A source may have several right answers (a word with two pronunciations, a sentence
with two translations): each output comes with a list of references, and an output
counts as exact when it equals any of them; its CER and WER are taken against the
closest one. Edit distances are rapidfuzz's Levenshtein (C++, also over word lists).

`corpus_metrics` computes the metrics asked for; `task_metrics` the ones a run reports
for its kind of task (training's final metrics, export's verification).

Neither TensorFlow nor Keras: `python -m kit evaluate BUNDLE_DIR` runs this on a device.
"""

METRICS = ("exact_match", "cer", "wer", "bleu", "chrf")

# What a run reports, by its task's metric (run.json's "metric"): one right answer (the
# built-in dates) or free text (tsv:, tfds:), where BLEU and chrF say more than exact
# match.
TASK_METRICS = {"exact_match": ("exact_match", "cer", "wer"),
                "bleu": ("exact_match", "cer", "wer", "bleu", "chrf")}


def task_metrics(metric, hypotheses, references):
    """The metrics of `TASK_METRICS[metric]` ("exact_match" or "bleu" runs)."""
    return corpus_metrics(hypotheses, references, names=TASK_METRICS[metric])


def corpus_metrics(hypotheses, references, names=METRICS):
    """{name: value} over a corpus.

    Args:
        hypotheses: list of output strings.
        references: a list with one entry per hypothesis: a string, or a list of
            strings (alternative right answers).
        names: which metrics to compute (BLEU and chrF cost the most).
    """
    references = [[r] if isinstance(r, str) else list(r) for r in references]
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if any(not refs for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    values = {}
    if "exact_match" in names:
        values["exact_match"] = exact_match(hypotheses, references)
    if "cer" in names:
        values["cer"] = error_rate(hypotheses, references, words=False)
    if "wer" in names:
        values["wer"] = error_rate(hypotheses, references, words=True)
    if "bleu" in names or "chrf" in names:
        values.update(_sacrebleu(hypotheses, references, names))
    return values


def exact_match(hypotheses, references):
    """% of hypotheses equal to one of their references (0 for an empty corpus)."""
    if not hypotheses:
        return 0.0
    hits = sum(any(h == r for r in _as_list(refs)) for h, refs in zip(hypotheses, references))
    return 100.0 * hits / len(hypotheses)


def error_rate(hypotheses, references, words):
    """Corpus CER (words=False) or WER (words=True), %: the summed edit distances to
    each output's closest reference over the summed lengths of those references."""
    from rapidfuzz.distance import Levenshtein

    errors = length = 0
    for hypothesis, refs in zip(hypotheses, references):
        hyp = hypothesis.split() if words else hypothesis
        best = None
        for reference in _as_list(refs):
            ref = reference.split() if words else reference
            distance = Levenshtein.distance(hyp, ref)
            # The closest reference; between equals, the longer one (the lower rate).
            key = (distance, -len(ref))
            if best is None or key < best[0]:
                best = (key, distance, len(ref))
        errors += best[1]
        length += best[2]
    if not length:
        return 0.0 if not errors else 100.0
    return 100.0 * errors / length


def _sacrebleu(hypotheses, references, names):
    """sacrebleu wants reference *streams*: the i-th stream holds every sentence's i-th
    reference, None where a sentence has fewer."""
    import sacrebleu

    depth = max((len(refs) for refs in references), default=1)
    streams = [[refs[i] if i < len(refs) else None for refs in references]
               for i in range(depth)]
    values = {}
    if "bleu" in names:
        values["bleu"] = sacrebleu.corpus_bleu(hypotheses, streams).score
    if "chrf" in names:
        values["chrf"] = sacrebleu.corpus_chrf(hypotheses, streams).score
    return values


def _as_list(references):
    return [references] if isinstance(references, str) else references


def format_metrics(values):
    """'exact_match 92.1, cer 1.3, ...' with one decimal."""
    return ", ".join(f"{name} {value:.1f}" if isinstance(value, float) else
                     f"{name} {value}" for name, value in values.items())
