"""bundle.txt and the vocabulary files: bundle.json's decoding facts for an app with no
JSON parser (C, or Kotlin and Swift without a JSON library).

    bundle.txt          UTF-8, every line ending "\\n": `key=value` (the value is all
                        after the first '='; no key or value holds a line break) or a
                        comment starting with '#'. The keys, always in this order, are
                        those of `flat_metadata_pairs`.
    source_vocab.txt    for a side whose tokenizer is "char" or "word" only: UTF-8, line
    target_vocab.txt    i (from 0) is the token of id i, so <pad>, <unk>, <s>, </s> come
                        first, every line ending "\\n". In a token a backslash, LF and CR
                        are written \\\\, \\n and \\r; nothing else is escaped, so split on
                        "\\n" only (not on CR, U+0085, U+2028 or the like, which a
                        character tokenizer may hold).

bundle.json names them in "flat" and records their SHA-256 in "files"; bundle.txt
records the SHA-256 of the model, tokenizer and vocabulary files. Export writes them
(`kit.runtime.bundle_format.write_bundle_json`), the runtime checks them at load.
Standard library only.
"""

from __future__ import annotations  # the runtime may run on an older Python

import re

from kit.runtime._spec_checks import BundleError, exact_object, plain_file_name, shown
from kit.runtime.signatures import DECODE_STEP, ENCODE, count_layers

FLAT_METADATA = "bundle.txt"
VOCABULARY_FILES = {"source": "source_vocab.txt", "target": "target_vocab.txt"}
VOCABULARY_TYPES = ("char", "word")  # kit.tokenizers' VocabularyTokenizer types
SENTENCEPIECE = "sentencepiece"  # the one type whose files are a JSON and a .model
_SIDES = ("source", "target")
_SPECIAL_NAMES = ("pad", "unk", "bos", "eos")

_HEADER = (
    "# bundle.json's decoding facts as key=value lines, for apps without a JSON parser:",
    "# the value is everything after the first '='; lines starting with '#' are comments.",
    "# The decode loop is described in bundle.json's \"decoding\" and the README.",
)
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}
_ESCAPE_SEQUENCE = re.compile(r"\\(.?)", re.DOTALL)  # in a vocabulary file
_TO_ESCAPE = re.compile(r"[\\\n\r]")  # in a token


def flat_entry(types):
    """bundle.json's "flat" for the tokenizer types {"source": type, "target": type}."""
    return {"metadata": FLAT_METADATA,
            "vocabulary": {side: VOCABULARY_FILES[side] if types[side] in VOCABULARY_TYPES
                           else None for side in _SIDES}}


def flat_files(spec):
    """The flat files a checked bundle.json names, in the order export writes them: the
    vocabulary files (source, then target), then bundle.txt, which records their
    SHA-256."""
    vocabulary = spec["flat"]["vocabulary"]
    return [*(vocabulary[side] for side in _SIDES if vocabulary[side] is not None),
            spec["flat"]["metadata"]]


def check_flat(spec, taken, fail):
    """Checks bundle.json's "flat": exactly "metadata" and "vocabulary" {"source",
    "target"}, plain file names, distinct from each other and from `taken` (the other
    files' names), a vocabulary file exactly for a char or word side; and that a
    sentencepiece side lists its JSON and its .model, which bundle.txt names."""
    flat = exact_object(spec, "flat", ("metadata", "vocabulary"), fail)
    vocabulary = exact_object(flat, "vocabulary", _SIDES, fail, "flat.vocabulary")
    names = [flat["metadata"], *(vocabulary[side] for side in _SIDES
                                 if vocabulary[side] is not None)]
    if not all(plain_file_name(name) for name in names) or len(set(names)) != len(names) \
            or set(names) & set(taken):
        fail(f"flat must name distinct file names in the bundle directory, none of them "
             f"another file of the bundle. Received: {shown(flat)}")
    for side in _SIDES:
        kind = spec["tokenizer"][side]
        if (vocabulary[side] is None) == (kind["type"] in VOCABULARY_TYPES):
            fail(f"flat.vocabulary.{side} must be a file name for a char or word tokenizer "
                 f"and null for any other; tokenizer.{side}.type is {shown(kind['type'])}. "
                 f"Received: {shown(vocabulary[side])}")
        if kind["type"] == SENTENCEPIECE and len(kind["files"]) != 2:
            fail(f"tokenizer.{side}.files must be a sentencepiece tokenizer's JSON and "
                 f".model file. Received: {shown(kind['files'])}")


def flat_metadata_pairs(spec, hashes):
    """bundle.txt's (key, value) pairs, values as text, for the checked bundle.json
    `spec`; `hashes`: {file name: SHA-256} of the model, tokenizer and vocabulary
    files."""
    S, T = spec["source_length"], spec["target_length"]
    sizes, signatures = spec["vocab_size"], spec["signatures"]
    single = next(v for v in spec["variants"] if (v["batch"], v["source_length"]) == (1, S))
    pairs = [("format_version", spec["format_version"]), ("recipe", spec["recipe"]),
             ("model_file", spec["model_file"]), ("source_length", S),
             ("target_length", T), ("max_new_tokens", T - 1)]
    pairs += [(f"{name}_id", spec["special_ids"][name]) for name in _SPECIAL_NAMES]
    pairs += [("source_vocab_size", sizes["source"]), ("target_vocab_size", sizes["target"])]
    hashed = [spec["model_file"]]
    for side in _SIDES:
        kind, vocabulary = spec["tokenizer"][side], spec["flat"]["vocabulary"][side]
        pairs += [(f"{side}_tokenizer", kind["type"]),
                  (f"{side}_tokenizer_size", sizes[f"{side}_tokenizer"])]
        if vocabulary is not None:
            pairs.append((f"{side}_vocabulary", vocabulary))
        if kind["type"] == SENTENCEPIECE:
            pairs.append((f"{side}_tokenizer_model", kind["files"][1]))
        hashed += kind["files"]
    encoded, inputs = signatures[ENCODE]["outputs"], signatures[DECODE_STEP]["inputs"]
    pairs += [
        ("num_decoder_layers", count_layers(encoded)),
        ("encode", single[ENCODE]), ("decode_step", single[DECODE_STEP]),
        # The loop's wiring, in bundle.json's order: encode's outputs that every step
        # takes, and the step's inputs it also returns (the caches, updated in place).
        ("encoded", ",".join(name for name in encoded if name in inputs)),
        ("caches", ",".join(name for name in inputs
                            if name in signatures[DECODE_STEP]["outputs"])),
        ("variants", " ".join(f"{v['batch']}x{v['source_length']}:{v[ENCODE]}:"
                              f"{v[DECODE_STEP]}" for v in spec["variants"])),
    ]
    hashed += flat_files(spec)[:-1]
    pairs += [(f"sha256.{name}", hashes[name]) for name in hashed]
    return [(key, str(value)) for key, value in pairs]


def flat_metadata_text(spec, hashes):
    """bundle.txt for the checked bundle.json `spec` (see `flat_metadata_pairs`).

    Raises:
        BundleError if a key or value cannot be one line (a line break, or '=' in a
        file name).
    """
    lines = list(_HEADER)
    for key, value in flat_metadata_pairs(spec, hashes):
        if "=" in key or any(c in key + value for c in "\n\r"):
            raise BundleError(f"{key}={shown(value)} cannot be a line of {FLAT_METADATA}: "
                              "a line break, or '=' in its key")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def read_flat_metadata(text):
    """The {key: value} of bundle.txt's text, in its order; comments and empty lines
    skipped.

    Raises:
        BundleError, one line, for a line that is not `key=value`, a key given twice,
        or a carriage return.
    """
    values = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        if "\r" in line:
            raise BundleError(f"line {number} holds a carriage return: lines end with "
                              "\\n alone")
        key, separator, value = line.partition("=")
        if not separator or not key:
            raise BundleError(f"line {number} is neither key=value nor a # comment: "
                              f"{shown(line)}")
        if key in values:
            raise BundleError(f"line {number} gives {key} a second time")
        values[key] = value
    return values


def vocabulary_text(tokens):
    r"""A vocabulary file's text: token i on line i, escaped, every line ending "\n".

    Example:

    >>> text = vocabulary_text(["<pad>", "a\\b", "\n", "é"])
    >>> text
    '<pad>\na\\\\b\n\\n\né\n'
    >>> read_vocabulary_text(text) == ["<pad>", "a\\b", "\n", "é"]
    True
    """
    return "".join(_TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], token) + "\n"
                   for token in tokens)


def read_vocabulary_text(text):
    """The tokens of a vocabulary file's text (the inverse of `vocabulary_text`).

    Raises:
        BundleError, one line, for text that does not end with "\\n" (cut short), a
        carriage return (the file was rewritten with \\r\\n endings) or a backslash
        followed by anything but \\, n or r.
    """
    if not text:
        return []
    if not text.endswith("\n"):
        raise BundleError("the last line does not end with \\n: the file was cut short")
    return [_unescaped(line, number)
            for number, line in enumerate(text[:-1].split("\n"), 1)]


def _unescaped(line, number):
    if "\r" in line:
        raise BundleError(f"line {number} holds a carriage return, which a token writes "
                          "as \\r: the file's line endings were changed")

    def one(match):
        if match.group(1) not in _UNESCAPES:
            raise BundleError(f"line {number}: {shown(line)} has a backslash that is not "
                              "\\\\, \\n or \\r")
        return _UNESCAPES[match.group(1)]

    return _ESCAPE_SEQUENCE.sub(one, line)
