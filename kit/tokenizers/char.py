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

from kit.tokenizers.base import VocabularyTokenizer


class CharTokenizer(VocabularyTokenizer):
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
    UNIT_RULE = "one character"
    UNITS = "characters"

    @staticmethod
    def units(text):
        return list(text)

    @staticmethod
    def is_unit(token):
        return isinstance(token, str) and len(token) == 1
