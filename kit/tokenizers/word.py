"""Word tokenizer: one id per whitespace-separated symbol of a closed set. Standard
library only.

For texts that are sequences of symbols rather than prose: a pronunciation's phones
("K AE1 T"), tags, codes. Each symbol is one token, so the decoder chooses among the
39 to 84 phones of a phone set instead of spelling "AE1" in three steps. A symbol
outside the vocabulary becomes `UNK_ID`.

    encode(text) = [id of w for w in text.split()]   (Python's split: any run of
                                                      whitespace separates)
    decode(ids)  = " ".join(symbols)

so decode(encode(text)) == text for every text whose symbols are known and that is
already `" ".join(text.split())`. The saved file is JSON (UTF-8):

    {"type": "word", "format_version": 1,
     "vocabulary": ["<pad>", "<unk>", "<s>", "</s>", "AH0", "N", ...]}

where the position in "vocabulary" is the token id; ids 0-3 are the specials.
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


class WordTokenizer(Tokenizer):
    """Maps each whitespace-separated word of a text to one id.

    Args:
        vocabulary: every token in id order: the four `SPECIAL_TOKENS`, then words
            (non-empty, without whitespace), each once.

    Example:

    >>> tok = WordTokenizer.train(["K AE1 T", "D AO1 G"])
    >>> tok.decode(tok.encode("K AO1 T"))
    'K AO1 T'
    >>> tok.encode("K X") == [tok.encode("K")[0], 1]
    True
    """

    TYPE = "word"

    def __init__(self, vocabulary: Sequence[str]):
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {list(SPECIAL_TOKENS)}. "
                             f"Received: {vocabulary[: len(SPECIAL_TOKENS)]}")
        words = vocabulary[len(SPECIAL_TOKENS):]
        for word in words:
            if not isinstance(word, str) or not word or word.split() != [word]:
                raise ValueError("after the specials, every vocabulary entry must be a "
                                 f"non-empty word without whitespace. Received: {word!r}")
        duplicates = sorted(w for w, n in Counter(words).items() if n > 1)
        if duplicates:
            raise ValueError(f"vocabulary lists words more than once. Received: {duplicates}")
        self._vocabulary = tuple(vocabulary)
        self._ids = {w: i for i, w in enumerate(words, start=len(SPECIAL_TOKENS))}

    @classmethod
    def train(cls, texts: Iterable[str], min_count: int = 1,
              max_vocab: int | None = None) -> WordTokenizer:
        """Builds the vocabulary from the words of `texts`, by descending count then
        by text (the same ids on every machine); `min_count` and `max_vocab` as for
        `CharTokenizer.train`."""
        counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings. Received: {text!r}")
            counts.update(text.split())
        return cls(SPECIAL_TOKENS + tuple(kept_by_count(counts, min_count, max_vocab)))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._vocabulary)

    def encode(self, text: str) -> list[int]:
        """One id per word of `text` (split at whitespace); adds no BOS or EOS."""
        check_text(text, "encode")
        ids = self._ids
        return [ids.get(w, UNK_ID) for w in text.split()]

    def unknown_characters(self, text: str) -> list[str]:
        """The distinct words of `text` the vocabulary lacks (a word tokenizer's
        unit is the word)."""
        check_text(text, "unknown_characters")
        ids = self._ids
        return [w for w in dict.fromkeys(text.split()) if w not in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of `ids` joined by one space (see `Tokenizer.decode`)."""
        return " ".join(decoded_tokens(self._vocabulary, ids))

    def to_dict(self) -> dict:
        return {"type": self.TYPE, "format_version": FORMAT_VERSION,
                "vocabulary": list(self._vocabulary)}

    @classmethod
    def from_dict(cls, config: dict) -> WordTokenizer:
        check_header(config, cls.TYPE)
        return from_vocabulary(cls, config)

    def __eq__(self, other):
        if not isinstance(other, WordTokenizer):
            return NotImplemented
        return self._vocabulary == other._vocabulary

    def __hash__(self):
        return hash(self._vocabulary)
