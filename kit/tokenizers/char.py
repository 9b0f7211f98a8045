"""Character tokenizer: one id per Unicode code point. Standard library only.

A token is one Unicode code point (a Python `str` character). Text is not normalized
(no NFC/NFKC), because the Unicode tables behind normalization differ between Python,
Android and iOS versions and would make the device disagree with training. A Kotlin
port iterates `String.codePoints()`, a Swift port `String.unicodeScalars` (not
`Character`, which is a grapheme cluster).

The saved file is JSON (UTF-8):

    {"type": "char", "format_version": 1,
     "vocabulary": ["<pad>", "<unk>", "<s>", "</s>", "e", " ", ...]}

where the position in "vocabulary" is the token id. Ids 0-3 are always the specials.
"""

from __future__ import annotations  # the runtime may run on an older Python

from collections import Counter
from collections.abc import Iterable, Sequence

from kit.tokenizers.base import (
    FORMAT_VERSION,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
    check_header,
    check_text,
    decoded_tokens,
    from_vocabulary,
    kept_by_count,
)


class CharTokenizer(Tokenizer):
    """Maps each character of a text to one id; unknown characters map to `UNK_ID`.

    Args:
        vocabulary: every token in id order: the four `SPECIAL_TOKENS`, then single
            characters, each once. Usually built by `CharTokenizer.train` or `load`.

    Example:

    >>> tok = CharTokenizer.train(["29 Nov 2026", "2026-11-29"])
    >>> ids = tok.encode("29 Nov")
    >>> tok.decode(ids + [3, 7])  # 3: EOS
    '29 Nov'
    >>> tok.decode(tok.encode("Z")) == "\ufffd"  # UNK_TEXT
    True
    """

    TYPE = "char"

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
        counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings. Received: {text!r}")
            counts.update(text)
        return cls(SPECIAL_TOKENS + tuple(kept_by_count(counts, min_count, max_vocab)))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """All tokens as a tuple; the index of a token is its id."""
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._vocabulary)

    def encode(self, text: str) -> list[int]:
        """Returns one id per character of `text`; adds no BOS or EOS."""
        check_text(text, "encode")
        ids = self._ids
        return [ids.get(c, UNK_ID) for c in text]

    def unknown_count(self, text: str) -> int:
        check_text(text, "unknown_count")
        ids = self._ids
        return sum(1 for c in text if c not in ids)

    def unknown_characters(self, text: str) -> list[str]:
        check_text(text, "unknown_characters")
        ids = self._ids
        return [c for c in dict.fromkeys(text) if c not in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Turns ids back into text (see `Tokenizer.decode`). Accepts any integers,
        numpy's included."""
        return "".join(decoded_tokens(self._vocabulary, ids))

    def to_dict(self) -> dict:
        return {"type": self.TYPE, "format_version": FORMAT_VERSION,
                "vocabulary": list(self._vocabulary)}

    @classmethod
    def from_dict(cls, config: dict) -> CharTokenizer:
        """Inverse of `to_dict`; raises TokenizerError on anything else."""
        check_header(config, cls.TYPE)
        return from_vocabulary(cls, config)

    def __eq__(self, other):
        if not isinstance(other, CharTokenizer):
            return NotImplemented
        return self._vocabulary == other._vocabulary

    def __hash__(self):
        return hash(self._vocabulary)
