"""The source and target lengths S and T, chosen from the training data.

S and T are fixed in the exported file (its input shapes, its KV cache), so they are
chosen once, from the training split: the smallest lengths that cover nearly every
pair, rounded up to a multiple of 8 (friendly to vector units and to the length
buckets), within a cap that keeps the file and its cache small.

Never from one line: lengths far beyond the body of the data (more than 4x its 99th
percentile, and 64 tokens past it) are left out of the choice when they are at most 1%
of the pairs, and cut like any other long pair. One 5,000-character line among 275
dates then leaves S at 40 where it used to set it to the cap. When such lines are more
than 1% of the pairs they are not outliers but the data: S or T follows them up to the
cap, and a cap that would cut more than 1% is refused, naming the flag that accepts it.
"""

import math
from dataclasses import dataclass

COVERAGE = 0.999  # the share of pairs that must fit whole
MULTIPLE = 8
MAX_AUTO_LENGTH = 512  # the longest S or T chosen without being asked
MAX_CUT_SHARE = 0.01  # more cut pairs than this and training refuses to start
BODY_PERCENTILE = 0.99  # the body of the data, which outliers are measured against
OUTLIER_FACTOR = 4  # an outlier is longer than this many times the body's length ...
OUTLIER_MARGIN = 64  # ... and than the body's length plus this many tokens


class LengthError(ValueError):
    """The data needs longer sequences than can be chosen without asking."""


@dataclass
class Lengths:
    """What `choose_lengths` decided and why, for the log line and run.json."""

    source: int  # S: source tokens the encoder reads
    target: int  # T: decoder positions, BOS included (targets keep T - 1 tokens + EOS)
    source_cut: int  # training pairs whose source is longer than S
    target_cut: int  # training pairs whose target is longer than T - 1
    pairs: int  # training pairs counted
    chosen: str  # "data" (both chosen here), "given" or "mixed"
    # Pairs left out of the choice as outliers (`robust_length`), cut with the rest;
    # 0 in runs made before the rule.
    source_outliers: int = 0
    target_outliers: int = 0

    def describe(self):
        share = 100.0 * max(self.source_cut, self.target_cut) / max(self.pairs, 1)
        outliers = [f"{n} {side}(s) far longer than the rest"
                    for n, side in ((self.source_outliers, "source"),
                                    (self.target_outliers, "target")) if n]
        left_out = f"; left out of the choice: {' and '.join(outliers)}" if outliers else ""
        return (f"lengths S={self.source}, T={self.target} ({self.chosen}): "
                f"{self.source_cut} source(s) and {self.target_cut} target(s) of "
                f"{self.pairs} training pairs are cut ({share:.2f}%){left_out}")

    def to_dict(self):
        return {"source": self.source, "target": self.target,
                "source_cut": self.source_cut, "target_cut": self.target_cut,
                "pairs": self.pairs, "chosen": self.chosen,
                "source_outliers": self.source_outliers,
                "target_outliers": self.target_outliers}


def covering_length(lengths, coverage=COVERAGE, multiple=MULTIPLE, cap=MAX_AUTO_LENGTH):
    """The smallest multiple of `multiple` that at least `coverage` of `lengths` fit
    in, at most `cap` (and at least `multiple`)."""
    if not lengths:
        return multiple
    ordered = sorted(lengths)
    needed = ordered[max(math.ceil(coverage * len(ordered)) - 1, 0)]
    return min(max(multiple * math.ceil(needed / multiple), multiple), cap)


def outliers(lengths):
    """How many of `lengths` lie far beyond the body of the data: longer than
    OUTLIER_FACTOR times its BODY_PERCENTILE and OUTLIER_MARGIN past it. 0 when they
    are too many to cut within MAX_CUT_SHARE, beside the (1 - COVERAGE) share that
    `covering_length` may cut: then they are the data."""
    if not lengths:
        return 0
    ordered = sorted(lengths)
    body = ordered[max(math.ceil(BODY_PERCENTILE * len(ordered)) - 1, 0)]
    fence = max(OUTLIER_FACTOR * body, body + OUTLIER_MARGIN)
    count = sum(n > fence for n in ordered)
    return count if count <= (MAX_CUT_SHARE - (1 - COVERAGE)) * len(ordered) else 0


def robust_length(lengths):
    """(`covering_length` of `lengths` without their `outliers`, how many were left out)."""
    count = outliers(lengths)
    kept = sorted(lengths)[:len(lengths) - count]
    return covering_length(kept), count


def choose_lengths(source_lengths, target_lengths, source=None, target=None,
                   from_preset=()):
    """S and T for token lengths of the training pairs.

    Args:
        source_lengths, target_lengths: tokens per source and per target (no BOS/EOS).
        source, target: lengths given (kept as given), or None to choose.
        from_preset: the sides ("source", "target") whose given length is the preset's,
            not the user's: they get the 1% rule too (a preset's T that cut 25% of the
            built-in dates' targets went by without a word).

    Raises:
        LengthError when a chosen length would cut more than 1% of the pairs: the data
        then needs the user to decide (a longer length costs memory and speed).
    """
    chosen_source = source is None
    chosen_target = target is None
    source_outliers = target_outliers = 0
    if chosen_source:
        source, source_outliers = robust_length(source_lengths)
    if chosen_target:
        # A target of n tokens occupies n + 1 positions: BOS + n in, n + EOS out.
        target, target_outliers = robust_length([n + 1 for n in target_lengths])
    lengths = Lengths(
        source=source, target=target,
        source_cut=sum(n > source for n in source_lengths),
        target_cut=sum(n > target - 1 for n in target_lengths),
        pairs=len(source_lengths),
        chosen="data" if chosen_source and chosen_target else
        "given" if not (chosen_source or chosen_target) else "mixed",
        source_outliers=source_outliers, target_outliers=target_outliers)
    limit = MAX_CUT_SHARE * lengths.pairs
    for name, cut, chosen in (("source", lengths.source_cut, chosen_source),
                              ("target", lengths.target_cut, chosen_target)):
        flag = f"--max-{name}-length"
        if name in from_preset and cut > limit:
            raise LengthError(
                f"{cut} of {lengths.pairs} training {name}s ({100.0 * cut / lengths.pairs:.1f}%) "
                f"are longer than the preset's {name} length "
                f"({lengths.source if name == 'source' else lengths.target - 1} tokens); pass "
                f"{flag} N to choose one (or to accept cutting them)")
        if chosen and cut > limit:
            raise LengthError(
                f"{cut} of {lengths.pairs} training {name}s ({100.0 * cut / lengths.pairs:.1f}%) "
                f"are longer than the longest {name} length chosen without asking "
                f"({MAX_AUTO_LENGTH} positions); pass {flag} N to accept cutting them")
    return lengths
