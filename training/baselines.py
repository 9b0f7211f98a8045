"""Did the model learn anything? Trivial baselines, measured on the validation split,
that every epoch is compared with.

A model can train for an hour and learn nothing: with one opaque subword per target
number, a model answered "52" to every input and the loss still went down a little.
The validation loss alone does not say so; these baselines do:

- the most frequent token: the token accuracy of predicting the training labels' most
  frequent token (often EOS) at every position;
- the unigram loss: the loss of the best prediction that ignores the source and the
  prefix, the training labels' token frequencies (under the same label smoothing as
  the training loss, so the numbers compare);
- one constant output: the exact match of answering every source with the most
  frequent training target;
- copying the source: on the decoded sample, an output worse (higher character
  error rate) than the source itself is no translation (a model that loops, or one
  trained on too few pairs to say anything but its language's most common words);
- and, on a sample of validation sources decoded after each epoch, whether the outputs
  collapsed to one or a few answers whatever the source.

An epoch is *trivial* when it does not clearly beat one of them. No TensorFlow here:
the numbers come from token ids and texts.
"""

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

TOKEN_ACCURACY_MARGIN = 0.02  # must beat the most frequent token by this much (absolute)
LOSS_RATIO = 0.95  # val_loss must be below this share of the unigram loss
SAMPLE_SOURCES = 100  # validation sources decoded after each epoch
# Collapsed outputs: at most this share as many distinct outputs as the sample has
# distinct references (and the references vary: at least MIN_DISTINCT_REFERENCES).
COLLAPSE_SHARE = 0.1
MIN_DISTINCT_REFERENCES = 5
RARE_COUNT = 10  # a target token seen fewer times than this in training is rare
RARE_SHARE = 0.3  # targets made mostly of rare tokens: the target vocabulary is the cause
FEW_PAIRS = 5000  # fewer training pairs than this: the data may be too small


@dataclass
class Baselines:
    """The trivial baselines of one run, from its training and validation splits."""

    majority_token: int  # the training labels' most frequent token id
    majority_token_accuracy: float  # its share of the validation labels
    unigram_loss: float  # the smoothed loss of the training token frequencies, per token
    constant_output: str  # the most frequent training target
    constant_exact_match: float  # percent of validation sources it answers exactly
    rare_token_share: float  # share of training target tokens (EOS aside) seen < RARE_COUNT
    target_tokens_per_text: float  # mean target tokens (EOS aside) in training

    def to_dict(self):
        return {key: round(value, 4) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


def measure(train_targets, val_targets, vocab_size, eos_id, label_smoothing,
            train_texts, val_references):
    """The `Baselines` of a run.

    Args:
        train_targets, val_targets: target token ids per pair (no BOS, no EOS), as the
            pipeline feeds them; labels are these plus EOS.
        vocab_size: V, the width of the logits (label smoothing spreads over all V).
        eos_id: the end-of-sequence id that ends every label sequence.
        label_smoothing: the training loss's epsilon.
        train_texts: the training targets as text.
        val_references: for each distinct validation source, the list of its targets.
    """
    train_counts = Counter(token for ids in train_targets for token in ids)
    content = sum(train_counts.values())
    train_counts[eos_id] += len(train_targets)
    val_counts = Counter(token for ids in val_targets for token in ids)
    val_counts[eos_id] += len(val_targets)
    val_total = sum(val_counts.values())
    majority = max(sorted(train_counts), key=train_counts.__getitem__)

    # The best constant distribution under label smoothing is the smoothed label mean:
    # q = (1 - eps) f + eps / V, f the training frequencies (with half a count for each
    # unseen token, so an unseen validation token costs a finite loss when eps is 0).
    total = sum(train_counts.values()) + 0.5 * vocab_size
    eps = label_smoothing

    def q(token):
        return (1 - eps) * (train_counts.get(token, 0) + 0.5) / total + eps / vocab_size

    unseen = vocab_size - len(train_counts)
    mean_log_q = (sum(math.log(q(t)) for t in train_counts) + unseen * math.log(q(-1))) \
        / vocab_size
    unigram_loss = sum(n * (-(1 - eps) * math.log(q(t)) - eps * mean_log_q)
                       for t, n in val_counts.items()) / max(val_total, 1)

    constant = Counter(train_texts).most_common(1)[0][0] if train_texts else ""
    constant_exact = (100.0 * sum(constant in refs for refs in val_references)
                      / max(len(val_references), 1))
    rare = sum(n for t, n in train_counts.items() if t != eos_id and n < RARE_COUNT)
    return Baselines(
        majority_token=majority,
        majority_token_accuracy=val_counts.get(majority, 0) / max(val_total, 1),
        unigram_loss=unigram_loss,
        constant_output=constant,
        constant_exact_match=constant_exact,
        rare_token_share=rare / max(content, 1),
        target_tokens_per_text=content / max(len(train_targets), 1))


@dataclass
class Verdict:
    """How one epoch compares with the baselines: `trivial` with the reasons why."""

    trivial: bool
    reasons: list = field(default_factory=list)  # one phrase per baseline not beaten
    sample_exact_match: float = None  # percent, on the decoded sample
    sample_distinct_outputs: int = None

    def to_dict(self):
        return asdict(self)


def judge(baselines, val_loss, val_token_accuracy, outputs=None, references=None,
          token_name=None, sources=None):
    """The `Verdict` of an epoch with these validation figures.

    Args:
        outputs, references: the decoded sample (one output and its list of right
            answers per source), or None when nothing was decoded.
        sources: the sample's sources, for the copy baseline (None: not compared).
        token_name: how to show the majority token ("</s>"), for the message.
    """
    reasons = []
    floor = baselines.majority_token_accuracy + TOKEN_ACCURACY_MARGIN
    if val_token_accuracy <= floor:
        shown = token_name or f"id {baselines.majority_token}"
        reasons.append(f"val_token_accuracy {val_token_accuracy:.3f} against "
                       f"{baselines.majority_token_accuracy:.3f} for always predicting {shown}")
    if val_loss >= LOSS_RATIO * baselines.unigram_loss:
        reasons.append(f"val_loss {val_loss:.3f} against {baselines.unigram_loss:.3f} for "
                       "the token frequencies alone (no source, no context)")
    verdict = Verdict(trivial=False)
    if outputs:
        exact = 100.0 * sum(out in refs for out, refs in zip(outputs, references)) \
            / len(outputs)
        distinct = len(set(outputs))
        distinct_refs = len({refs[0] for refs in references})
        verdict.sample_exact_match = round(exact, 2)
        verdict.sample_distinct_outputs = distinct
        if (distinct_refs >= MIN_DISTINCT_REFERENCES
                and distinct <= max(1, COLLAPSE_SHARE * distinct_refs)
                and exact <= max(baselines.constant_exact_match, 0.0) + 1.0):
            common = Counter(outputs).most_common(1)[0][0]
            reasons.append(f"{distinct} distinct output(s) for {len(outputs)} sources "
                           f"with {distinct_refs} distinct answers (mostly {common!r})")
        if sources is not None:
            from kit.metrics import error_rate

            model_cer = error_rate(outputs, references, words=False)
            copy_cer = error_rate(sources, references, words=False)
            if model_cer >= copy_cer:
                reasons.append(f"character error rate {model_cer:.1f}% on the sample "
                               f"against {copy_cer:.1f}% for copying the source")
    verdict.reasons = reasons
    verdict.trivial = bool(reasons)
    return verdict


def likely_cause(baselines, target_tokenizer, train_pairs):
    """One phrase: the likeliest reason a run stays trivial, and the flag to try.

    Args:
        target_tokenizer: the target side's tokenizer kind ("char", "word",
            "sentencepiece").
        train_pairs: how many training pairs there are.
    """
    if target_tokenizer != "char" and baselines.rare_token_share > RARE_SHARE:
        return (f"the target vocabulary: {100 * baselines.rare_token_share:.0f}% of the "
                f"training target tokens ({target_tokenizer}, "
                f"{baselines.target_tokens_per_text:.1f} a target) are seen fewer than "
                f"{RARE_COUNT} times, too rarely to learn; try --target-tokenizer char")
    if train_pairs < FEW_PAIRS:
        return (f"too little data: {train_pairs} training pairs; add pairs, or try the "
                "smaller --preset tiny")
    return ("the optimisation has not taken off: try a longer --warmup-steps, or a "
            "constant --learning-rate 3e-4")
