"""What `python -m kit train` decides from the data when the user does not say: each
side's tokenizer (characters, words or subwords, and its vocabulary) and the model size.

Each rule looks at the training split only, is stated here in numbers, and comes with
a sentence for the log that says what was decided and why. No TensorFlow.

The tokenizer rule, applied to the sources and to the targets separately: each side
gets its own tokenizer and its own vocabulary (spoken words in, digits out is the usual
case: subwords or words for the first, characters for the second). The statistics are
medians over the side's texts, so a few outlier lines (3.5% of 5,000-character lines)
cannot switch the choice:

    sentencepiece  median words a text > 2 AND median characters > 20 AND at least
                   1,000 distinct words                 (sentences of real words)
                   OR median characters > 100           (too long for characters)
    word           median words a text >= 2 AND at most 500 distinct words AND every
                   text is its words joined by one space AND the words seen fewer
                   than 5 times make under 0.1% of the word occurrences
                                                        (symbols of a closed set)
    char           otherwise (digits, dates, single words, transliteration)

The medians are over all texts; the word counts (distinct words, rare words, the
round trip) over the texts at most 4 times the median length (and at least 40
characters), so that a few junk lines, each with hundreds of words of its own, cannot
open a closed set of symbols or make codes look like a vocabulary.

A character model is the better choice for short strings over a small set of symbols:
it needs no vocabulary to learn, never meets an unknown word, and copies digits and
letters exactly. Subwords win on sentences over a real vocabulary (translation,
summaries): characters would make sequences four to five times longer, and the decoder
would have to spell every word. Words win on sequences of symbols from a closed set (a
pronunciation's phones "K AE1 T", 39 to 84 of them; tags): one step per symbol instead
of spelling "AE1" in three, and no unknown symbol at test time, which the rare-word
bound checks (a real vocabulary has a long tail of words seen once or twice: phones
and tags do not). The distinct-word bounds separate symbol sets from vocabularies:
the built-in dates have about 2,000 distinct words (day and year numbers), spoken
numbers in six languages 16,000, while phone sets have under 100. A text of 100
characters is about 20 words: a character decoder would run 100 steps where a subword
one runs 25. Subwords also need more than 20 characters a text: short strings with
many distinct "words" are codes, not sentences (the dates: 14 characters).

A SentencePiece vocabulary size, when not given, is a quarter of that side's distinct
words (a word seen a handful of times then shares pieces with others instead of taking
an id of its own), at least 256, at most 8,000 (the TensorFlow tutorial's size for 50k
sentence pairs), and always 64 more than the side's characters (every character must
be a piece: character coverage 1.0). `--vocab-size` sets the size of both sides.

The model size follows how much the data teaches: the training pairs (how many
different inputs the model sees) AND the target tokens (what the loss is computed on;
one pair of spoken number to digits teaches 5 tokens, one sentence pair 30). A size
needs both: many pairs with one-token outputs, or a few long targets, do not feed a
bigger model.

    small  (2+2 layers, D 64)               below 30,000 pairs or 150,000 target tokens
    base   (4+4, D 128: the TF tutorial's)  from there, below 150,000 pairs or 2,000,000
                                            target tokens
    large  (4+4, D 256, ff 1024)            from 150,000 pairs and 2,000,000 target tokens

A bigger model overfits small data, and a small one underfits large data. 150,000
target tokens is 30,000 pairs of 5 tokens (digits, a short word's phones); 2,000,000 is
150,000 pairs of 13 tokens, i.e. sentences. `large` has 4x `base`'s weights in its
layers, and its training step took 2.4x as long on 2 CPU cores (64 pairs of 32 tokens,
4,000-token vocabularies: 2.1 s against 0.86 s), so it is chosen only where
sentence-sized data pays for it. The built-in data keeps `small`
(its README figures); `tiny` is for tests only.
"""

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from kit.models.config import PRESETS

TOKENIZERS = ("auto", "char", "word", "sentencepiece")
PRESET_CHOICES = ("auto", *PRESETS)  # what --preset takes

SUBWORD_MIN_WORDS_PER_TEXT = 2.0  # median words a text above this ...
SUBWORD_MIN_DISTINCT_WORDS = 1000  # ... over at least this many distinct words ...
SUBWORD_MIN_CHARS_FOR_WORDS = 20.0  # ... in texts of more than this many characters
SUBWORD_MIN_CHARS_PER_TEXT = 100.0  # or a median text longer than this
WORD_MIN_WORDS_PER_TEXT = 2.0  # word tokens: median words a text at least this ...
WORD_MAX_DISTINCT_WORDS = 500  # ... over at most this many distinct words ...
WORD_RARE_COUNT = 5  # ... where the words seen fewer times than this ...
WORD_MAX_RARE_SHARE = 0.001  # ... make under this share of the word occurrences
# Word counts leave out texts longer than this many times the median (an outlier) ...
OUTLIER_LENGTH_FACTOR = 4
OUTLIER_MIN_LENGTH = 40  # ... and longer than this many characters
MIN_SUBWORD_VOCAB = 256
MAX_SUBWORD_VOCAB = 8000
BASE_PRESET_MIN_PAIRS = 30_000  # base from this many training pairs ...
BASE_PRESET_MIN_TARGET_TOKENS = 150_000  # ... and this many target tokens in them
LARGE_PRESET_MIN_PAIRS = 150_000  # large from this many pairs ...
LARGE_PRESET_MIN_TARGET_TOKENS = 2_000_000  # ... and this many target tokens


class ChoiceError(ValueError):
    """The data and the options cannot give a tokenizer (one line for the user)."""


@dataclass
class TextStats:
    """What the tokenizer rule looks at, for one side (sources or targets)."""

    texts: int
    chars_per_text: float  # median
    words_per_text: float  # median, words split at whitespace
    distinct_words: int
    distinct_chars: int
    rare_word_share: float  # occurrences of words seen < WORD_RARE_COUNT times / all
    words_round_trip: bool  # every text == " ".join(text.split())
    outliers: int = 0  # texts left out of the word counts: longer than `outlier_length`

    @classmethod
    def of(cls, texts):
        texts = list(texts)
        chars = set()
        for text in texts:
            chars.update(text)
        median_chars = statistics.median(len(text) for text in texts) if texts else 0
        longest = max(OUTLIER_LENGTH_FACTOR * median_chars, OUTLIER_MIN_LENGTH)
        typical = [text for text in texts if len(text) <= longest]
        words = Counter(word for text in typical for word in text.split())
        occurrences = sum(words.values())
        rare = sum(n for n in words.values() if n < WORD_RARE_COUNT)
        return cls(texts=len(texts), chars_per_text=median_chars,
                   words_per_text=statistics.median(len(text.split()) for text in texts)
                   if texts else 0,
                   distinct_words=len(words), distinct_chars=len(chars),
                   rare_word_share=rare / occurrences if occurrences else 0.0,
                   words_round_trip=all(" ".join(text.split()) == text for text in typical),
                   outliers=len(texts) - len(typical))

    def wants_subwords(self):
        return (self.words_per_text > SUBWORD_MIN_WORDS_PER_TEXT
                and self.chars_per_text > SUBWORD_MIN_CHARS_FOR_WORDS
                and self.distinct_words >= SUBWORD_MIN_DISTINCT_WORDS
                or self.chars_per_text > SUBWORD_MIN_CHARS_PER_TEXT)

    def wants_words(self):
        return (self.words_per_text >= WORD_MIN_WORDS_PER_TEXT
                and self.distinct_words <= WORD_MAX_DISTINCT_WORDS
                and self.words_round_trip
                and self.rare_word_share < WORD_MAX_RARE_SHARE)

    def kind(self):
        if self.wants_subwords():
            return "sentencepiece"
        return "word" if self.wants_words() else "char"

    def describe(self):
        return (f"median {self.chars_per_text:g} characters and {self.words_per_text:g} "
                f"word{'' if self.words_per_text == 1 else 's'} a text, "
                f"{self.distinct_words} distinct words, rare words "
                f"{100 * self.rare_word_share:.3g}% of occurrences"
                f"{'' if self.words_round_trip else ', not single-spaced'}"
                f"{f' ({self.outliers} outlier texts left out)' if self.outliers else ''}")

    def to_dict(self):
        return {"texts": self.texts, "median_chars_per_text": self.chars_per_text,
                "median_words_per_text": self.words_per_text,
                "distinct_words": self.distinct_words, "distinct_chars": self.distinct_chars,
                "rare_word_share": round(self.rare_word_share, 6),
                "words_round_trip": self.words_round_trip, "outliers": self.outliers}


RULE = (f"sentencepiece for a median of more than {SUBWORD_MIN_WORDS_PER_TEXT:g} words and "
        f"{SUBWORD_MIN_CHARS_FOR_WORDS:g} characters a text over {SUBWORD_MIN_DISTINCT_WORDS}+ "
        f"distinct words, or more than {SUBWORD_MIN_CHARS_PER_TEXT:g} characters; word for "
        f"{WORD_MIN_WORDS_PER_TEXT:g}+ words a text over at most {WORD_MAX_DISTINCT_WORDS} "
        f"distinct words, single-spaced, words seen under {WORD_RARE_COUNT} times under "
        f"{100 * WORD_MAX_RARE_SHARE:g}%; char otherwise")


def subword_vocab_size(texts):
    """A quarter of the distinct words of `texts`, within [MIN_SUBWORD_VOCAB,
    MAX_SUBWORD_VOCAB], and at least 64 more than their distinct characters."""
    stats = TextStats.of(texts)
    size = min(MAX_SUBWORD_VOCAB, max(stats.distinct_words // 4, MIN_SUBWORD_VOCAB))
    return max(size, stats.distinct_chars + 64)


def choose_tokenizer_kind(stats, requested="auto", flag="--tokenizer"):
    """("char" | "word" | "sentencepiece", why) for one side's `TextStats`:
    `requested` unless it is "auto"."""
    if requested != "auto":
        return requested, f"asked for with {flag}"
    return stats.kind(), f"auto: {stats.describe()}"


# A character vocabulary keeps at most this many characters, the most frequent, when no
# --vocab-size is given: every distinct character of a file of many scripts (50,000
# and more) would each get an embedding row and an output logit, most of them seen a
# few times. 8,000 holds the few thousand characters that cover Chinese or Japanese
# running text (over 99.5% of it) with room to spare.
MAX_CHAR_VOCAB = 8000
# More than this share of a side's training units read as unknown gets a warning.
UNKNOWN_WARNING = 0.01


def unknown_share(tokenizer, texts):
    """The share of `texts`' units (characters, words, pieces) that `tokenizer` maps to
    the unknown id."""
    unknown = total = 0
    for text in texts:
        unknown += tokenizer.unknown_count(text)
        total += len(tokenizer.encode(text))
    return unknown / max(total, 1)


def train_side_tokenizer(texts, side, requested="auto", vocab_size=None):
    """Chooses and trains the tokenizer of one side ("source" or "target") on `texts`,
    that side's texts of the training split.

    Returns:
        (tokenizer, record): `record` is what run.json keeps of the decision, with a
        one-line "message" for the log.
    Raises:
        ChoiceError when SentencePiece cannot train with the given --vocab-size.
    """
    from kit.tokenizers import CharTokenizer, WordTokenizer

    texts = list(texts)
    stats = TextStats.of(texts)
    kind, why = choose_tokenizer_kind(stats, requested, f"--{side}-tokenizer")
    if kind == "sentencepiece":
        from kit.tokenizers.sentencepiece import SentencePieceTokenizer

        size = vocab_size or subword_vocab_size(texts)
        try:
            tokenizer = SentencePieceTokenizer.train(texts, vocab_size=size)
        except RuntimeError as error:
            raise ChoiceError(_sentencepiece_error(error, size)) from None
        except ValueError as error:  # no text at all on this side
            raise ChoiceError(f"{side}s: {error}") from None
        size_note = (f"--vocab-size {vocab_size}" if vocab_size else
                     f"asked for {size}: a quarter of the distinct words, within "
                     f"[{MIN_SUBWORD_VOCAB}, {MAX_SUBWORD_VOCAB}]")
    else:
        cls = CharTokenizer if kind == "char" else WordTokenizer
        cap = vocab_size or (MAX_CHAR_VOCAB if kind == "char" else None)
        tokenizer = cls.train(texts, max_vocab=cap)
        capped = not vocab_size and kind == "char" and tokenizer.vocab_size >= MAX_CHAR_VOCAB
        size_note = (f"--vocab-size {vocab_size}" if vocab_size else
                     f"the {MAX_CHAR_VOCAB} most frequent characters" if capped else
                     f"every {'character' if kind == 'char' else 'word'} seen")
    message = f"{side} tokenizer {kind}, {tokenizer.vocab_size} tokens ({size_note}; {why})"
    share = unknown_share(tokenizer, texts)
    if share > UNKNOWN_WARNING:
        unit = {"char": "characters", "word": "words"}.get(kind, "characters")
        message += (f"\nwarning: {share:.1%} of the training {side}s' {unit} read as "
                    f"unknown with this vocabulary ({size_note}); the model cannot write "
                    "or read them: raise --vocab-size, or choose another tokenizer")
    return tokenizer, {"type": kind, "requested": requested,
                       "vocab_size": tokenizer.vocab_size,
                       "requested_vocab_size": vocab_size, "reason": why,
                       "stats": stats.to_dict(), "message": message}


def train_tokenizers(pairs, source="auto", target="auto", vocab_size=None):
    """Trains the run's two tokenizers on the (source, target) `pairs` of the training
    split, each chosen from its own side (see the module's docstring).

    Returns:
        (TokenizerPair, record): `record` holds each side's record ("source",
        "target") and the rule; each side's "message" is a line for the log.
    """
    from kit.tokenizers import TokenizerPair

    source_tokenizer, source_record = train_side_tokenizer(
        (s for s, _ in pairs), "source", source, vocab_size)
    target_tokenizer, target_record = train_side_tokenizer(
        (t for _, t in pairs), "target", target, vocab_size)
    return (TokenizerPair(source_tokenizer, target_tokenizer),
            {"source": source_record, "target": target_record, "rule": RULE})


def _sentencepiece_error(error, size):
    """One line for SentencePiece's refusal, e.g. "INTERNAL: src/trainer_interface.cc(638)
    [...] Vocabulary size is smaller than required_chars. 8 vs 49. Increase ..."."""
    text = " ".join(str(error).split())
    needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", text)
    if needed:
        return (f"--vocab-size {size} is too small for this data: SentencePiece needs a "
                f"piece for every character and the 4 special tokens, at least "
                f"{needed.group(1)}")
    reason = text.rsplit("] ", 1)[-1] or "no reason given"
    return (f"SentencePiece cannot make a vocabulary of {size} pieces from this data "
            f"({reason}); choose another --vocab-size")


def choose_preset(requested, data_kind, train_pairs, target_tokens):
    """(preset name, why): `small`, `base` or `large` by the training split's pairs and
    target tokens (BOS and EOS not counted). The built-in data keeps `small`, whose
    figures the README reports."""
    if requested != "auto":
        return requested, "asked for with --preset"
    if data_kind == "default":
        return "small", "auto: the built-in data's measured preset"
    def reaches(pairs, tokens):
        return train_pairs >= pairs and target_tokens >= tokens

    if reaches(LARGE_PRESET_MIN_PAIRS, LARGE_PRESET_MIN_TARGET_TOKENS):
        name = "large"
    elif reaches(BASE_PRESET_MIN_PAIRS, BASE_PRESET_MIN_TARGET_TOKENS):
        name = "base"
    else:
        name = "small"
    return name, (f"auto: {train_pairs} training pairs with {target_tokens} target "
                  f"tokens; base from {BASE_PRESET_MIN_PAIRS} pairs and "
                  f"{BASE_PRESET_MIN_TARGET_TOKENS} target tokens, large from "
                  f"{LARGE_PRESET_MIN_PAIRS} and {LARGE_PRESET_MIN_TARGET_TOKENS}")


# The training recipe for data other than the built-in dates, chosen by
# benchmarks/sweep_jax.py on three real tasks (benchmarks/README.md, "sweep_jax.py"):
# pre-LN with a warm-up of one epoch was the best cell on all three, and post-LN
# diverged with a 100-step warm-up on all three.
MIN_WARMUP_STEPS = 100  # the shortest warm-up measured to be safe (with pre-LN)
MAX_WARMUP_STEPS = 4000  # the paper's, for large data
DEFAULT_DATA_WARMUP_STEPS = 1000  # the built-in dates' measured warm-up (post-LN)


def choose_schedule(data_kind, train_pairs, batch_size, warmup_steps=None):
    """(norm_first, warmup_steps, why) of a run: pre-LN with a warm-up of one epoch of
    steps within [MIN_WARMUP_STEPS, MAX_WARMUP_STEPS], or `warmup_steps` when given;
    the built-in data keeps the recipe its README figures were measured with."""
    if data_kind == "default":
        warmup = warmup_steps or DEFAULT_DATA_WARMUP_STEPS
        return False, warmup, (f"post-LN, warm-up {warmup} steps: the built-in data's "
                               "measured recipe")
    if warmup_steps is not None:
        return True, warmup_steps, f"pre-LN, warm-up {warmup_steps} steps (--warmup-steps)"
    epoch = math.ceil(train_pairs / batch_size)
    warmup = min(max(epoch, MIN_WARMUP_STEPS), MAX_WARMUP_STEPS)
    return True, warmup, (f"pre-LN, warm-up {warmup} steps (auto: one epoch of {epoch} steps, "
                          f"within [{MIN_WARMUP_STEPS}, {MAX_WARMUP_STEPS}]; measured on "
                          "real tasks, benchmarks/README.md)")
