"""What every task shares: its description, the split by source, the TSV files, their
statistics and the scoring of a baseline with the kit's own metrics."""

import importlib.util
import random
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kit.files import atomic_write
from kit.metrics import corpus_metrics

SIZES = ("small", "full")


class MissingPackage(RuntimeError):
    """A task's data package is not installed; the message is the one line to print."""


@dataclass(frozen=True)
class Task:
    """One real task: where its data comes from and how to build and judge it."""

    name: str
    shape: str  # what goes in and what comes out, in a few words
    package: str  # the PyPI distribution that carries the data
    module: str  # the import name of that package, to see whether it is installed
    licence: str  # of the data (and of the package, where they differ)
    kind: str  # "word" (exact match and error rates matter) or "sentence" (BLEU, chrF)
    # (train, test) per size, in split keys (distinct sources; lemmas for inflection);
    # None for train takes every key left.
    sizes: dict
    # (train_size, test_size, seed) -> (train pairs, test pairs), lists of (source, target).
    build: Callable
    # (train pairs, test pairs) -> {baseline name: function source -> output}.
    baselines: Callable
    published: str = ""  # a published figure for this data, with its source
    # (name, text -> text): the outputs and references are also scored after this
    # normalisation, where published figures are reported so (CMUdict without stress).
    also_scored: tuple = ()
    in_requirements: bool = True  # False: large, optional; the task skips without it

    def check_installed(self):
        if importlib.util.find_spec(self.module) is None:
            where = ("it is in requirements.txt" if self.in_requirements else
                     "it is left out of requirements.txt for its size")
            raise MissingPackage(f"{self.name}: skipped, needs `pip install {self.package}` "
                                 f"({where})")


@dataclass
class Built:
    """A task's two files, their statistics and its baselines' scores."""

    train: list
    test: list
    stats: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)  # name -> metrics


def clean(text):
    """One line of a TSV field: every run of whitespace (tabs, newlines) becomes a space."""
    return " ".join(text.split())


def split_by_key(groups, train_size, test_size, seed):
    """Shuffles the keys of `groups` ({key: [pairs]}) and gives the first `test_size` keys'
    pairs to test, the next `train_size` (None: all the rest) to train.

    A key is a source, or something coarser (a lemma whose forms must all stay on one
    side): train and test never share one."""
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    if len(keys) <= test_size:
        raise ValueError(f"{len(keys)} distinct keys, need more than {test_size} for test")
    test_keys = keys[:test_size]
    rest = keys[test_size:]
    train_keys = rest if train_size is None else rest[:train_size]
    return ([pair for key in train_keys for pair in groups[key]],
            [pair for key in test_keys for pair in groups[key]])


def group_pairs(pairs):
    """{source: [pairs]} in first-seen order, duplicates dropped."""
    groups = {}
    for source, target in pairs:
        entries = groups.setdefault(source, [])
        if (source, target) not in entries:
            entries.append((source, target))
    return groups


def references(pairs):
    """{source: [targets]}: lines with one source are alternative right answers."""
    grouped = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    return grouped


def score(predict, test):
    """The kit's metrics of `predict(source) -> output` on the test pairs."""
    grouped = references(test)
    sources = list(grouped)
    return corpus_metrics([predict(source) for source in sources],
                          [grouped[source] for source in sources])


def score_predictions(predictions, test, normalize=None):
    """The kit's metrics of the outputs `evaluate --output` wrote (source, output,
    first reference, correct), against every reference of the test pairs; each text
    passed through `normalize` first when given."""
    normalize = normalize or (lambda text: text)
    grouped = references(test)
    outputs = {}
    for line in Path(predictions).read_text(encoding="utf-8").splitlines():
        source, output = line.split("\t")[:2]
        outputs[source] = output
    sources = [source for source in grouped if source in outputs]
    if len(sources) != len(grouped):
        raise ValueError(f"{predictions}: outputs for {len(sources)} of {len(grouped)} "
                         "test sources")
    return corpus_metrics([normalize(outputs[source]) for source in sources],
                          [[normalize(ref) for ref in grouped[source]] for source in sources])


def write_tsv(path, pairs):
    for source, target in pairs:
        if not source.strip() or not target.strip() or re.search(r"[\t\n\r]", source + target):
            raise ValueError(f"not a TSV pair: {source!r} -> {target!r}")
    atomic_write(path, "".join(f"{source}\t{target}\n" for source, target in pairs))


def statistics_of(train, test):
    """What a reader needs to picture the data: sizes and medians per side."""
    def side(pairs, index):
        texts = [pair[index] for pair in pairs]
        words = {word for text in texts for word in text.split()}
        return {"median_chars": statistics.median(len(t) for t in texts),
                "median_words": statistics.median(len(t.split()) for t in texts),
                "mean_chars": round(statistics.fmean(len(t) for t in texts), 1),
                "distinct_words": len(words)}

    return {"train_pairs": len(train), "test_pairs": len(test),
            "train_sources": len({s for s, _ in train}),
            "test_sources": len({s for s, _ in test}),
            "source": side(train, 0), "target": side(train, 1)}
