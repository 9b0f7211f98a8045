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

from kit.tokenizers.base import VocabularyTokenizer


class WordTokenizer(VocabularyTokenizer):
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
    UNIT_RULE = "a non-empty word without whitespace"
    UNITS = "words"
    SEPARATOR = " "

    @staticmethod
    def units(text):
        return text.split()

    @staticmethod
    def is_unit(token):
        return isinstance(token, str) and bool(token) and token.split() == [token]
