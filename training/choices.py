"""What `python -m kit train` decides from the data when the user does not say: the
tokenizer (characters or subwords, and the vocabulary size) and the model size.

Each rule looks at the training split only, is stated here in numbers, and comes with
a sentence for the log that says what was decided and why. No TensorFlow.

The tokenizer rule. A character model is the better choice for tasks whose texts are
short strings over a small set of symbols: dates, spoken-form numbers, a word and its
phones ("cat" -> "K AE1 T"), transliteration. It needs no vocabulary to learn, never
meets an unknown word, and copies digits and letters exactly. Subwords win when the
texts are sentences over a real vocabulary (translation, summaries): characters would
make sequences four to five times longer, and the decoder would have to spell every
word. So subwords (SentencePiece) are chosen when, on the sources or on the targets,

    texts hold more than 2 words and more than 20 characters on average AND that
    side has at least 1,000 distinct words,             (sentences of real words)
    OR texts average more than 100 characters.           (too long for characters)

Each side is looked at alone. A pronunciation dictionary has 1 word per source (over
many distinct words) and 6 or 7 per target (over 39 to 84 phones): neither side is
sentences, where pooling both sides would call it so. The distinct-word bound
separates symbol sets from vocabularies: phone sets have 39 to 84 symbols, the dates
about 100 words, number words about 40, while a few thousand sentences hold thousands
of distinct words. A text of 100 characters is about 20 words: a character decoder
would run 100 steps where a subword one runs 25.

The SentencePiece vocabulary size, when not given, is a quarter of the distinct words
(a word seen a handful of times then shares pieces with others instead of taking an
id of its own), at least 256, at most 8,000 (the TensorFlow tutorial's size for 50k
sentence pairs), and always 64 more than the data's characters (every character must
be a piece: character coverage 1.0). Sources and targets share one vocabulary.

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
from dataclasses import dataclass

TOKENIZERS = ("auto", "char", "sentencepiece")
PRESETS = ("auto", "tiny", "small", "base", "large")

SUBWORD_MIN_WORDS_PER_TEXT = 2.0  # more than this many words per text on average ...
SUBWORD_MIN_DISTINCT_WORDS = 1000  # ... over at least this many distinct words
# ... in texts longer than this: short strings with many distinct "words" are codes,
# not sentences (the built-in dates: 14 characters, 2,000 distinct day and year numbers).
SUBWORD_MIN_CHARS_FOR_WORDS = 20.0
SUBWORD_MIN_CHARS_PER_TEXT = 100.0  # or texts longer than this on average
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
    chars_per_text: float  # mean
    words_per_text: float  # mean, words split at whitespace
    distinct_words: int
    distinct_chars: int

    @classmethod
    def of(cls, texts):
        texts = list(texts)
        words, chars = set(), set()
        word_counts, char_counts = [], []
        for text in texts:
            split = text.split()
            words.update(split)
            chars.update(text)
            word_counts.append(len(split))
            char_counts.append(len(text))
        return cls(texts=len(texts),
                   chars_per_text=statistics.fmean(char_counts) if texts else 0.0,
                   words_per_text=statistics.fmean(word_counts) if texts else 0.0,
                   distinct_words=len(words), distinct_chars=len(chars))

    def wants_subwords(self):
        return (self.words_per_text > SUBWORD_MIN_WORDS_PER_TEXT
                and self.chars_per_text > SUBWORD_MIN_CHARS_FOR_WORDS
                and self.distinct_words >= SUBWORD_MIN_DISTINCT_WORDS
                or self.chars_per_text > SUBWORD_MIN_CHARS_PER_TEXT)

    def describe(self):
        return (f"{self.chars_per_text:.1f} characters and {self.words_per_text:.1f} words "
                f"a text, {self.distinct_words} distinct words")

    def to_dict(self):
        return {"texts": self.texts, "chars_per_text": round(self.chars_per_text, 2),
                "words_per_text": round(self.words_per_text, 2),
                "distinct_words": self.distinct_words, "distinct_chars": self.distinct_chars}


def subword_vocab_size(texts):
    """A quarter of the distinct words of `texts`, within [MIN_SUBWORD_VOCAB,
    MAX_SUBWORD_VOCAB], and at least 64 more than their distinct characters."""
    both = TextStats.of(texts)
    size = min(MAX_SUBWORD_VOCAB, max(both.distinct_words // 4, MIN_SUBWORD_VOCAB))
    return max(size, both.distinct_chars + 64)


def choose_tokenizer_kind(sources, targets, requested="auto"):
    """("char" | "sentencepiece", why) for the `TextStats` of the two sides:
    `requested` unless it is "auto"."""
    if requested != "auto":
        return requested, "asked for with --tokenizer"
    kind = "sentencepiece" if sources.wants_subwords() or targets.wants_subwords() else "char"
    return kind, (f"auto: sources {sources.describe()}; targets {targets.describe()}; "
                  f"subwords when a side has more than {SUBWORD_MIN_WORDS_PER_TEXT:g} words "
                  f"and {SUBWORD_MIN_CHARS_FOR_WORDS:g} characters a text over "
                  f"{SUBWORD_MIN_DISTINCT_WORDS}+ distinct words, or more than "
                  f"{SUBWORD_MIN_CHARS_PER_TEXT:g} characters a text")


def train_tokenizer(pairs, requested="auto", vocab_size=None):
    """Trains the run's tokenizer on the (source, target) `pairs` of the training split:
    one vocabulary shared by sources and targets.

    Returns:
        (tokenizer, record): `record` is what run.json keeps of the decision, with a
        "message" for the log.
    Raises:
        ChoiceError when SentencePiece cannot train with the given --vocab-size.
    """
    from kit.tokenizer import CharTokenizer

    texts = [text for pair in pairs for text in pair]
    sources = TextStats.of(source for source, _ in pairs)
    targets = TextStats.of(target for _, target in pairs)
    kind, why = choose_tokenizer_kind(sources, targets, requested)
    if kind == "char":
        tokenizer = CharTokenizer.train(texts, max_vocab=vocab_size)
        size_note = f"--vocab-size {vocab_size}" if vocab_size else "every character seen"
    else:
        from kit.subword import SentencePieceTokenizer

        size = vocab_size or subword_vocab_size(texts)
        try:
            tokenizer = SentencePieceTokenizer.train(texts, vocab_size=size)
        except RuntimeError as error:
            raise ChoiceError(_sentencepiece_error(error, size)) from None
        size_note = (f"--vocab-size {vocab_size}" if vocab_size else
                     f"asked for {size}: a quarter of the distinct words, within "
                     f"[{MIN_SUBWORD_VOCAB}, {MAX_SUBWORD_VOCAB}]")
    message = (f"tokenizer {kind} ({why}); {tokenizer.vocab_size} tokens ({size_note}), "
               "one vocabulary shared by sources and targets")
    return tokenizer, {"type": kind, "requested": requested, "vocab_size": tokenizer.vocab_size,
                       "requested_vocab_size": vocab_size, "reason": why,
                       "sources": sources.to_dict(), "targets": targets.to_dict(),
                       "message": message}


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
