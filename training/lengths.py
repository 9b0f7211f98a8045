"""The source and target lengths S and T, chosen from the training data.

S and T are fixed in the exported file (its input shapes, its KV cache), so they are
chosen once, from the training split: the smallest lengths that cover nearly every
pair, rounded up to a multiple of 8 (friendly to vector units and to the length
buckets), within a cap that keeps the file and its cache small.
"""

import math
from dataclasses import dataclass

COVERAGE = 0.999  # the share of pairs that must fit whole
MULTIPLE = 8
MAX_AUTO_LENGTH = 512  # the longest S or T chosen without being asked
MAX_CUT_SHARE = 0.01  # more cut pairs than this and training refuses to start


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

    def describe(self):
        share = 100.0 * max(self.source_cut, self.target_cut) / max(self.pairs, 1)
        return (f"lengths S={self.source}, T={self.target} ({self.chosen}): "
                f"{self.source_cut} source(s) and {self.target_cut} target(s) of "
                f"{self.pairs} training pairs are cut ({share:.2f}%)")

    def to_dict(self):
        return {"source": self.source, "target": self.target,
                "source_cut": self.source_cut, "target_cut": self.target_cut,
                "pairs": self.pairs, "chosen": self.chosen}


def covering_length(lengths, coverage=COVERAGE, multiple=MULTIPLE, cap=MAX_AUTO_LENGTH):
    """The smallest multiple of `multiple` that at least `coverage` of `lengths` fit
    in, at most `cap` (and at least `multiple`)."""
    if not lengths:
        return multiple
    ordered = sorted(lengths)
    needed = ordered[max(math.ceil(coverage * len(ordered)) - 1, 0)]
    return min(max(multiple * math.ceil(needed / multiple), multiple), cap)


def choose_lengths(source_lengths, target_lengths, source=None, target=None):
    """S and T for token lengths of the training pairs.

    Args:
        source_lengths, target_lengths: tokens per source and per target (no BOS/EOS).
        source, target: lengths the user gave (kept as given), or None to choose.

    Raises:
        LengthError when a chosen length would cut more than 1% of the pairs: the data
        then needs the user to decide (a longer length costs memory and speed).
    """
    chosen_source = source is None
    chosen_target = target is None
    if chosen_source:
        source = covering_length(source_lengths)
    if chosen_target:
        # A target of n tokens occupies n + 1 positions: BOS + n in, n + EOS out.
        target = covering_length([n + 1 for n in target_lengths])
    lengths = Lengths(
        source=source, target=target,
        source_cut=sum(n > source for n in source_lengths),
        target_cut=sum(n > target - 1 for n in target_lengths),
        pairs=len(source_lengths),
        chosen="data" if chosen_source and chosen_target else
        "given" if not (chosen_source or chosen_target) else "mixed")
    limit = MAX_CUT_SHARE * lengths.pairs
    for name, cut, chosen in (("source", lengths.source_cut, chosen_source),
                              ("target", lengths.target_cut, chosen_target)):
        if chosen and cut > limit:
            flag = f"--max-{name}-length"
            raise LengthError(
                f"{cut} of {lengths.pairs} training {name}s ({100.0 * cut / lengths.pairs:.1f}%) "
                f"are longer than the longest {name} length chosen without asking "
                f"({MAX_AUTO_LENGTH} positions); pass {flag} N to accept cutting them")
    return lengths
