"""Character tokenizer shared by training and the on-device runtime.

The phone must turn text into ids exactly as training did, so this one file serves
both sides and imports only the standard library: no numpy, TensorFlow or Keras.

A token is one Unicode code point (a Python `str` character). Text is not normalized
(no NFC/NFKC), because the Unicode tables behind normalization differ between Python,
Android and iOS versions and would make the device disagree with training. A Kotlin
port iterates `String.codePoints()`, a Swift port `String.unicodeScalars` (not
`Character`, which is a grapheme cluster).

The saved file is JSON (UTF-8):

    {"type": "char", "format_version": 1,
     "vocabulary": ["<pad>", "<unk>", "<s>", "</s>", "e", " ", ...]}

where the position in "vocabulary" is the token id. Ids 0-3 are always the specials.

`load_tokenizer` reads any tokenizer file the kit writes, by its "type": "char" (this
module) or "sentencepiece" (`kit.subword`, which needs the `sentencepiece` package).
Each tokenizer's `files()` names every file it is saved in, for export to copy.
"""

from __future__ import annotations  # the runtime may run on an older Python

import json
import operator
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from kit.files import atomic_write

TOKENIZER_FILE = "tokenizer.json"  # its name in run directories and bundles
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


class CharTokenizer:
    """Maps each character of a text to one id; unknown characters map to `UNK_ID`.

    Args:
        vocabulary: every token in id order: the four `SPECIAL_TOKENS`, then single
            characters, each once. Usually built by `CharTokenizer.train` or `load`.

    Example:

    >>> tok = CharTokenizer.train(["29 Nov 2026", "2026-11-29"])
    >>> ids = tok.encode("29 Nov")
    >>> tok.decode(ids + [EOS_ID, 7])
    '29 Nov'
    >>> tok.decode(tok.encode("Z")) == UNK_TEXT
    True
    """

    def __init__(self, vocabulary: Sequence[str]):
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"vocabulary must start with {list(SPECIAL_TOKENS)}. "
                f"Received: {vocabulary[: len(SPECIAL_TOKENS)]}"
            )
        characters = vocabulary[len(SPECIAL_TOKENS):]
        for token in characters:
            if not isinstance(token, str) or len(token) != 1:
                raise ValueError(
                    f"after the specials, every vocabulary entry must be one "
                    f"character. Received: {token!r}"
                )
        duplicates = sorted(c for c, n in Counter(characters).items() if n > 1)
        if duplicates:
            raise ValueError(
                f"vocabulary lists characters more than once. Received: {duplicates}"
            )
        self._vocabulary = tuple(vocabulary)
        self._ids = {c: i for i, c in enumerate(characters, start=len(SPECIAL_TOKENS))}

    @classmethod
    def train(
        cls, texts: Iterable[str], min_count: int = 1, max_vocab: int | None = None
    ) -> CharTokenizer:
        """Builds the vocabulary from the characters of `texts`.

        Characters are ordered by descending count, then by code point, so the same
        texts give the same ids on every machine and in every run.

        Args:
            texts: an iterable of strings.
            min_count: characters seen fewer times are left out (they become UNK).
            max_vocab: if given, the largest vocabulary size, specials included; the
                most frequent characters are kept.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(
                f"min_count must be an integer >= 1. Received: min_count={min_count!r}"
            )
        if max_vocab is not None and (
            isinstance(max_vocab, bool)
            or not isinstance(max_vocab, int)
            or max_vocab < len(SPECIAL_TOKENS)
        ):
            raise ValueError(
                f"max_vocab must be None or an integer >= {len(SPECIAL_TOKENS)} "
                f"(the special tokens). Received: max_vocab={max_vocab!r}"
            )
        counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings. Received: {text!r}")
            counts.update(text)
        kept = [c for c, n in counts.items() if n >= min_count]
        kept.sort(key=lambda c: (-counts[c], c))
        if max_vocab is not None:
            kept = kept[: max_vocab - len(SPECIAL_TOKENS)]
        return cls(SPECIAL_TOKENS + tuple(kept))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """All tokens as a tuple; the index of a token is its id."""
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._vocabulary)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    def encode(self, text: str) -> list[int]:
        """Returns one id per character of `text`; adds no BOS or EOS."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str. Received: {text!r}")
        ids = self._ids
        return [ids.get(c, UNK_ID) for c in text]

    def unknown_count(self, text: str) -> int:
        """How many characters of `text` the vocabulary lacks (each becomes `UNK_ID`).

        A model has learnt nothing about them, so a caller can warn that its output for
        `text` may be nonsense; `encode` is unchanged.
        """
        if not isinstance(text, str):
            raise TypeError(f"unknown_count expects a str. Received: {text!r}")
        ids = self._ids
        return sum(1 for c in text if c not in ids)

    def unknown_characters(self, text: str) -> list[str]:
        """The distinct characters of `text` the vocabulary lacks, in order of first
        appearance (for a message that shows the user which ones)."""
        if not isinstance(text, str):
            raise TypeError(f"unknown_characters expects a str. Received: {text!r}")
        ids = self._ids
        return [c for c in dict.fromkeys(text) if c not in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Turns ids back into text, as a model's output is meant to be read.

        Stops at the first EOS (what follows is past the end of the sentence), skips
        PAD and BOS, and renders UNK as `UNK_TEXT` (U+FFFD). Accepts any integers,
        numpy's included. An id outside the vocabulary raises ValueError: it means
        that the model and the tokenizer do not belong together.
        """
        pieces = []
        for raw in ids:
            token_id = operator.index(raw)
            if token_id == EOS_ID:
                break
            if not 0 <= token_id < len(self._vocabulary):
                raise ValueError(
                    f"token id {token_id} is outside the vocabulary "
                    f"(size {len(self._vocabulary)})"
                )
            if token_id == UNK_ID:
                pieces.append(UNK_TEXT)
            elif token_id >= len(SPECIAL_TOKENS):
                pieces.append(self._vocabulary[token_id])
        return "".join(pieces)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def files(self, json_name: str = TOKENIZER_FILE) -> list[str]:
        """The names of the files this tokenizer is saved in, when its JSON file is
        `json_name`: what export copies into a bundle and bundle.json lists."""
        return [json_name]

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def to_dict(self) -> dict:
        """The JSON-ready description that `save` writes."""
        return {
            "type": "char",
            "format_version": FORMAT_VERSION,
            "vocabulary": list(self._vocabulary),
        }

    @classmethod
    def from_dict(cls, config: dict) -> CharTokenizer:
        """Inverse of `to_dict`; raises TokenizerError on anything else."""
        if not isinstance(config, dict):
            raise TokenizerError(
                f"a tokenizer description must be a JSON object. Received: {type(config).__name__}"
            )
        if config.get("type") != "char":
            raise TokenizerError(
                f"not a char tokenizer: type is {config.get('type')!r}, expected 'char'"
            )
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise TokenizerError(
                f"unsupported char tokenizer format_version {version!r} "
                f"(this code reads version {FORMAT_VERSION})"
            )
        vocabulary = config.get("vocabulary")
        if not isinstance(vocabulary, list):
            raise TokenizerError(
                f"'vocabulary' must be a list of strings. Received: {type(vocabulary).__name__}"
            )
        try:
            return cls(vocabulary)
        except ValueError as error:
            raise TokenizerError(f"invalid vocabulary: {error}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes the tokenizer as JSON, atomically (`kit.files.atomic_write`): a crash
        or a full disk never leaves a half-written tokenizer that a later `load` (or a
        phone) would read."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        atomic_write(path, text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Reads a file written by `save`; raises TokenizerError if it cannot."""
        return _from_config(cls, path, _read_json(path))

    def __eq__(self, other):
        if not isinstance(other, CharTokenizer):
            return NotImplemented
        return self._vocabulary == other._vocabulary

    def __hash__(self):
        return hash(self._vocabulary)

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _load_sentencepiece(path, config, read_file):
    from kit.subword import SentencePieceTokenizer  # needs the `sentencepiece` package

    return SentencePieceTokenizer.from_dict(config, path, read_file=read_file)


# The tokenizer types that `load_tokenizer` can read, by their JSON "type".
_TOKENIZER_TYPES = {
    "char": lambda path, config, read_file: _from_config(CharTokenizer, path, config),
    "sentencepiece": _load_sentencepiece,
}


def load_tokenizer(path: str | os.PathLike, content: bytes | None = None, read_file=None):
    """Loads any tokenizer this kit saves, chosen by the file's "type": a
    `CharTokenizer`, or a `kit.subword.SentencePieceTokenizer` (which also reads the
    model file its JSON names, beside it).

    This is the runtime's entry point: it raises TokenizerError, with one line that
    names the file and the problem, for a missing, corrupt or unknown file.

    Args:
        path: the tokenizer file.
        content: the file's bytes, already read (then `path` only names them in
            errors). The runtime passes the very bytes whose checksum it verified, so
            a file replaced between the check and the read cannot slip through.
        read_file: for tokenizers made of several files, `read_file(name) -> bytes`
            reads the file `name` beside `path` (the runtime's checks the file's
            checksum before returning it); None reads it from disk.
    """
    config = _read_json(path) if content is None else _parse_json(path, content)
    kind = config.get("type")
    if kind not in _TOKENIZER_TYPES:
        raise TokenizerError(
            f"{path}: unknown tokenizer type {kind!r} "
            f"(known: {', '.join(sorted(_TOKENIZER_TYPES))})"
        )
    return _TOKENIZER_TYPES[kind](path, config, read_file)


def source_ids(tokenizer, text: str, source_length: int) -> list[int]:
    """The S ids the encoder reads for `text`: `tokenizer.encode(text)` cut to S and
    right-padded with PAD to S, no BOS or EOS. Training, export and the device all
    call this, so they agree on what a source is."""
    ids = tokenizer.encode(text)[:source_length]
    return ids + [PAD_ID] * (source_length - len(ids))


def _from_config(cls, path, config):
    """`cls.from_dict(config)`, with errors that name the file they came from."""
    try:
        return cls.from_dict(config)
    except TokenizerError as error:
        raise TokenizerError(f"{path}: {error}") from None


def _read_json(path):
    """Returns the JSON object in `path`, or raises TokenizerError saying why not."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise TokenizerError(
            f"{path} is a directory, expected a tokenizer file such as {TOKENIZER_FILE}"
        )
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file not found: {path}") from None
    except OSError as error:
        raise TokenizerError(f"cannot read tokenizer file {path}: {error.strerror}") from None
    return _parse_json(path, raw)


def _parse_json(path, raw):
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
            f"{path} holds a JSON {type(config).__name__}, expected a tokenizer object"
        )
    return config
