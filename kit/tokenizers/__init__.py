"""Tokenizers shared by training and the on-device runtime, one per side of a model.

The phone must turn text into ids exactly as training did, so the same code serves
both, and none of it imports numpy, TensorFlow or Keras. Every tokenizer implements
`Tokenizer` (kit/tokenizers/base.py): encode, decode, vocab_size, the special ids
(pad 0, unk 1, bos 2, eos 3, always), unknown_count and unknown_characters, to_dict,
save and load, and files(json_name): the files a bundle records for it, with its type.

    "char"           CharTokenizer (char.py): one id per character. Standard library.
    "word"           WordTokenizer (word.py): one id per whitespace-separated symbol of
                     a closed set (phones "K AE1 T", tags). Standard library.
    "sentencepiece"  SentencePieceTokenizer (sentencepiece.py): subwords; needs the
                     `sentencepiece` package, imported only when such a file is read.

A model reads source ids and writes target ids: `TokenizerPair(source, target)` holds
the tokenizer of each side (the same object on both for a run made before each side
had its own).
"""

from __future__ import annotations  # the runtime may run on an older Python

import os
from typing import NamedTuple

from kit.tokenizers.base import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    UNK_TEXT,
    Tokenizer,
    TokenizerError,
    parse_json,
    read_json,
)
from kit.tokenizers.char import CharTokenizer
from kit.tokenizers.word import WordTokenizer

TYPES = ("char", "word", "sentencepiece")
SOURCE_TOKENIZER_FILE = "source_tokenizer.json"  # names in run directories and bundles
TARGET_TOKENIZER_FILE = "target_tokenizer.json"

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "SOURCE_TOKENIZER_FILE", "SPECIAL_TOKENS",
           "TARGET_TOKENIZER_FILE", "TYPES", "UNK_ID", "UNK_TEXT", "CharTokenizer",
           "Tokenizer", "TokenizerError", "TokenizerPair", "WordTokenizer",
           "load_tokenizer", "source_ids"]


class TokenizerPair(NamedTuple):
    """The tokenizer of a model's sources and that of its targets."""

    source: Tokenizer
    target: Tokenizer


def _with_path(path, load):
    """`load()`, with a TokenizerError naming the file it came from."""
    try:
        return load()
    except TokenizerError as error:
        message = str(error)
        raise TokenizerError(message if message.startswith(f"{path}") else
                             f"{path}: {message}") from None


def load_tokenizer(path: str | os.PathLike, content: bytes | None = None, read_file=None):
    """Loads any tokenizer this kit saves, chosen by the file's "type".

    This is the runtime's entry point: it raises TokenizerError, with one line that
    names the file and the problem, for a missing, corrupt or unknown file.

    Args:
        path: the tokenizer's JSON file.
        content: the file's bytes, already read (then `path` only names them in
            errors). The runtime passes the very bytes whose checksum it verified, so
            a file replaced between the check and the read cannot slip through.
        read_file: for tokenizers made of several files, `read_file(name) -> bytes`
            reads the file `name` beside `path` (the runtime's checks the file's
            checksum before returning it); None reads it from disk.
    """
    config = read_json(path) if content is None else parse_json(path, content)
    kind = config.get("type")
    if kind == "char":
        return _with_path(path, lambda: CharTokenizer.from_dict(config))
    if kind == "word":
        return _with_path(path, lambda: WordTokenizer.from_dict(config))
    if kind == "sentencepiece":
        from kit.tokenizers.sentencepiece import SentencePieceTokenizer

        return SentencePieceTokenizer.from_dict(config, path, read_file=read_file)
    raise TokenizerError(f"{path}: unknown tokenizer type {kind!r} "
                         f"(known: {', '.join(sorted(TYPES))})")


def source_ids(tokenizer, text: str, source_length: int) -> list[int]:
    """The S ids the encoder reads for `text`: `tokenizer.encode(text)` cut to S and
    right-padded with PAD to S, no BOS or EOS. Training, export and the device all
    call this, so they agree on what a source is."""
    ids = tokenizer.encode(text)[:source_length]
    return ids + [PAD_ID] * (source_length - len(ids))
