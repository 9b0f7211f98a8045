"""The interface every tokenizer of the kit implements, and what they share: the
special ids, the error type and the reading of a tokenizer's JSON file.

Standard library only: the device side imports it.
"""

from __future__ import annotations  # the runtime may run on an older Python

import json
import operator
import os
from collections import Counter
from collections.abc import Iterable

FORMAT_VERSION = 1

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")  # indexed by the ids above

# `decode` renders an unknown token as U+FFFD, the character Unicode reserves for
# "something was here that could not be represented", so a lossy output is visible.
UNK_TEXT = "\ufffd"


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable or not one this code understands."""


class Tokenizer:
    """What training, export and the device ask of a tokenizer.

    Every tokenizer maps text to ids and back with the kit's special ids (pad 0, unk 1,
    bos 2, eos 3), is saved as one JSON file (plus, for some, files beside it that the
    JSON names) and is read back by `kit.tokenizers.load_tokenizer` from the JSON's
    "type". A bundle records each side's tokenizer as `{"type": TYPE, "files":
    files(json_name)}`.

    Subclasses set `TYPE` and implement `encode`, `decode`, `vocab_size`,
    `unknown_characters`, `to_dict` and `from_dict`; the rest has defaults here.
    """

    TYPE = None  # the JSON "type" of the saved file

    pad_id, unk_id, bos_id, eos_id = (property(lambda self, i=i: i)
                                      for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID))

    @property
    def vocab_size(self) -> int:
        """The number of ids, the specials included: ids lie in [0, vocab_size)."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """The ids of `text`; no BOS or EOS. Unknown pieces become `UNK_ID`."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`, as a model's output is meant to be read: stops at the
        first EOS, skips PAD and BOS, renders UNK as `UNK_TEXT`. An id outside the
        vocabulary raises ValueError: the model and the tokenizer do not belong
        together."""
        raise NotImplementedError

    def unknown_count(self, text: str) -> int:
        """How many unknown tokens `text` makes: the model has learnt nothing about
        them, so a caller can warn that its output may be nonsense."""
        return sum(1 for i in self.encode(text) if i == UNK_ID)

    def unknown_characters(self, text: str) -> list[str]:
        """The distinct pieces of `text` (characters, or words for a word tokenizer)
        the vocabulary lacks, in order of first appearance, for a message."""
        raise NotImplementedError

    def files(self, json_name: str) -> list[str]:
        """The names of the files this tokenizer is saved in when its JSON file is
        `json_name`, that one first: what export copies and bundle.json lists."""
        return [json_name]

    def to_dict(self) -> dict:
        """The JSON-ready description that `save` writes."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Writes the tokenizer as JSON at `path` (and any file beside it that it
        needs), atomically: a crash never leaves a half-written tokenizer."""
        from kit.files import atomic_write

        atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Reads a file written by `save`; raises TokenizerError if it cannot."""
        config = read_json(path)
        try:
            return cls.from_dict(config)
        except TokenizerError as error:
            raise TokenizerError(f"{path}: {error}") from None

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class VocabularyTokenizer(Tokenizer):
    """A tokenizer whose tokens are the units a text splits into (`units`), one id
    each, from a vocabulary saved in its JSON file: the four `SPECIAL_TOKENS`, then
    the units, each once. The character and word tokenizers are this, with their own
    units; subclasses set `UNIT_RULE` and `UNITS` (for messages), `SEPARATOR` (what
    `decode` puts between units), and implement `units` and `is_unit`.
    """

    UNIT_RULE = None  # what a vocabulary entry must be, e.g. "one character"
    UNITS = None  # their plural name, e.g. "characters"
    SEPARATOR = ""

    def __init__(self, vocabulary):
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {list(SPECIAL_TOKENS)}. "
                             f"Received: {vocabulary[: len(SPECIAL_TOKENS)]}")
        units = vocabulary[len(SPECIAL_TOKENS):]
        for unit in units:
            if not self.is_unit(unit):
                raise ValueError(f"after the specials, every vocabulary entry must be "
                                 f"{self.UNIT_RULE}. Received: {unit!r}")
        duplicates = sorted(u for u, n in Counter(units).items() if n > 1)
        if duplicates:
            raise ValueError(f"vocabulary lists {self.UNITS} more than once. "
                             f"Received: {duplicates}")
        self._vocabulary = tuple(vocabulary)
        self._ids = {u: i for i, u in enumerate(units, start=len(SPECIAL_TOKENS))}

    @staticmethod
    def units(text: str) -> list[str]:
        """The units of `text`, in order."""
        raise NotImplementedError

    @staticmethod
    def is_unit(token) -> bool:
        """Whether `token` can be a vocabulary entry."""
        raise NotImplementedError

    @classmethod
    def train(cls, texts: Iterable[str], min_count: int = 1, max_vocab: int | None = None):
        """Builds the vocabulary from the units of `texts`, by descending count then by
        text, so the same texts give the same ids on every machine and in every run.

        Args:
            texts: an iterable of strings.
            min_count: units seen fewer times are left out (they become UNK).
            max_vocab: if given, the largest vocabulary size, specials included; the
                most frequent units are kept.
        """
        counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings. Received: {text!r}")
            counts.update(cls.units(text))
        return cls(SPECIAL_TOKENS + tuple(kept_by_count(counts, min_count, max_vocab)))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """All tokens as a tuple; the index of a token is its id."""
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._vocabulary)

    def encode(self, text: str) -> list[int]:
        """One id per unit of `text`; adds no BOS or EOS."""
        check_text(text, "encode")
        ids = self._ids
        return [ids.get(u, UNK_ID) for u in self.units(text)]

    def unknown_count(self, text: str) -> int:
        check_text(text, "unknown_count")
        ids = self._ids
        return sum(1 for u in self.units(text) if u not in ids)

    def unknown_characters(self, text: str) -> list[str]:
        check_text(text, "unknown_characters")
        ids = self._ids
        return [u for u in dict.fromkeys(self.units(text)) if u not in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """The units of `ids` joined by `SEPARATOR` (see `Tokenizer.decode`). Accepts
        any integers, numpy's included."""
        return self.SEPARATOR.join(decoded_tokens(self._vocabulary, ids))

    def to_dict(self) -> dict:
        return {"type": self.TYPE, "format_version": FORMAT_VERSION,
                "vocabulary": list(self._vocabulary)}

    @classmethod
    def from_dict(cls, config: dict):
        """Inverse of `to_dict`; raises TokenizerError on anything else."""
        check_header(config, cls.TYPE)
        return from_vocabulary(cls, config)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._vocabulary == other._vocabulary

    def __hash__(self):
        return hash(self._vocabulary)


def kept_by_count(counts, min_count, max_vocab):
    """The tokens of `counts` seen at least `min_count` times, by descending count then
    by text (the same ids on every machine), at most `max_vocab` - 4 of them."""
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1. Received: min_count={min_count!r}")
    if max_vocab is not None and (isinstance(max_vocab, bool) or not isinstance(max_vocab, int)
                                  or max_vocab < len(SPECIAL_TOKENS)):
        raise ValueError(f"max_vocab must be None or an integer >= {len(SPECIAL_TOKENS)} "
                         f"(the special tokens). Received: max_vocab={max_vocab!r}")
    kept = [token for token, n in counts.items() if n >= min_count]
    kept.sort(key=lambda token: (-counts[token], token))
    if max_vocab is not None:
        kept = kept[: max_vocab - len(SPECIAL_TOKENS)]
    return kept


def decoded_tokens(vocabulary, ids):
    """The tokens of `ids` up to the first EOS, PAD and BOS skipped, UNK as `UNK_TEXT`."""
    tokens = []
    for raw in ids:
        token_id = operator.index(raw)
        if token_id == EOS_ID:
            break
        if not 0 <= token_id < len(vocabulary):
            raise ValueError(f"token id {token_id} is outside the vocabulary "
                             f"(size {len(vocabulary)})")
        if token_id == UNK_ID:
            tokens.append(UNK_TEXT)
        elif token_id >= len(SPECIAL_TOKENS):
            tokens.append(vocabulary[token_id])
    return tokens


def from_vocabulary(cls, config):
    """`cls(config["vocabulary"])`, or TokenizerError."""
    vocabulary = config.get("vocabulary")
    if not isinstance(vocabulary, list):
        raise TokenizerError(
            f"'vocabulary' must be a list of strings. Received: {type(vocabulary).__name__}")
    try:
        return cls(vocabulary)
    except ValueError as error:
        raise TokenizerError(f"invalid vocabulary: {error}") from None


def check_text(text, what):
    if not isinstance(text, str):
        raise TypeError(f"{what} expects a str. Received: {text!r}")


def check_header(config, kind):
    """`config` is a JSON object of type `kind` and of this format; else TokenizerError."""
    if not isinstance(config, dict):
        raise TokenizerError(
            f"a tokenizer description must be a JSON object. Received: {type(config).__name__}")
    if config.get("type") != kind:
        raise TokenizerError(
            f"not a {kind} tokenizer: type is {config.get('type')!r}, expected {kind!r}")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise TokenizerError(f"unsupported {kind} tokenizer format_version {version!r} "
                             f"(this code reads version {FORMAT_VERSION})")


def read_json(path):
    """Returns the JSON object in `path`, or raises TokenizerError saying why not."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise TokenizerError(f"{path} is a directory, expected a tokenizer file (.json)")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file not found: {path}") from None
    except OSError as error:
        raise TokenizerError(f"cannot read tokenizer file {path}: {error.strerror}") from None
    return parse_json(path, raw)


def parse_json(path, raw):
    """The JSON object in the bytes `raw` read from `path`, or TokenizerError."""
    try:
        config = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise TokenizerError(
            f"{path} is not UTF-8 (bad byte at offset {error.start}): not a tokenizer file"
        ) from None
    except json.JSONDecodeError as error:
        raise TokenizerError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno}): corrupt tokenizer file"
        ) from None
    except (ValueError, RecursionError) as error:
        # Valid JSON that Python refuses: an integer of more than 4300 digits, or
        # arrays nested deeper than the parser's recursion limit.
        raise TokenizerError(
            f"{path} cannot be read as a tokenizer file: {str(error).splitlines()[0]}"
        ) from None
    if not isinstance(config, dict):
        raise TokenizerError(
            f"{path} holds a JSON {type(config).__name__}, expected a tokenizer object")
    return config
