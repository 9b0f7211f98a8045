"""Reading a bundle's files: each checked against the SHA-256 bundle.json records
before it is parsed, each side's tokenizer against bundle.json's type, vocabulary
sizes and special ids, and the flat files against bundle.json and the tokenizers.
Imports neither TensorFlow nor Keras."""

import hashlib

from kit.runtime._spec_checks import shown
from kit.runtime.bundle_format import BUNDLE_JSON, SIDES, BundleError, read_regular_file
from kit.runtime.flat_files import (
    flat_metadata_pairs,
    read_flat_metadata,
    read_vocabulary_text,
)
from kit.tokenizers import TokenizerError, load_tokenizer


def verified_bytes(path, name, files):
    """The bytes of `path`/`name`, if their SHA-256 is the one bundle.json records."""
    file = path / name
    content = read_regular_file(file, f"{path} is missing {name}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != files[name]:
        raise BundleError(f"{file} is not the file {path / BUNDLE_JSON} describes (SHA-256 "
                          f"{digest[:16]}..., recorded {files[name][:16]}...): it was "
                          "changed, damaged or copied from another bundle; export again")
    return content


def load_side(path, spec, side):
    """The `side` ("source" or "target") tokenizer of the bundle in `path`: its files
    checked against bundle.json's checksums, then parsed, then checked against
    bundle.json's type, vocabulary sizes and special ids."""
    names = spec["tokenizer"][side]["files"]
    tokenizer_path = path / names[0]
    content = verified_bytes(path, names[0], spec["files"])

    def read_tokenizer_file(name):  # a SentencePiece model: checked, then parsed
        if name not in names:
            raise BundleError(f"{tokenizer_path} needs {name}, which {path / BUNDLE_JSON} "
                              f"does not list among the {side} tokenizer's files")
        return verified_bytes(path, name, spec["files"])

    try:
        tokenizer = load_tokenizer(tokenizer_path, content=content,
                                   read_file=read_tokenizer_file)
    except TokenizerError as error:
        raise BundleError(str(error)) from None
    check_tokenizer(spec, side, tokenizer, tokenizer_path, path / BUNDLE_JSON)
    return tokenizer


def check_tokenizer(spec, side, tokenizer, tokenizer_path, file):
    """The `side` tokenizer agrees with bundle.json's type, vocabulary sizes and
    special ids."""
    kind = spec["tokenizer"][side]["type"]
    if tokenizer.TYPE != kind:
        raise BundleError(f"{tokenizer_path} is a {tokenizer.TYPE} tokenizer, "
                          f"but {file} says tokenizer.{side}.type is {kind!r}")
    sizes = spec["vocab_size"]
    if tokenizer.vocab_size != sizes[f"{side}_tokenizer"]:
        raise BundleError(f"{tokenizer_path} has {tokenizer.vocab_size} tokens, but {file} "
                          f"says vocab_size.{side}_tokenizer is {sizes[f'{side}_tokenizer']}")
    # Export's rule (export/load.py): the model embeds every id the tokenizer makes.
    # A larger model vocabulary is allowed; `translate` shows its extra ids as unknown.
    if tokenizer.vocab_size > sizes[side]:
        raise BundleError(f"{tokenizer_path} has {tokenizer.vocab_size} tokens, more than "
                          f"the model's {side} vocabulary ({sizes[side]}; {file})")
    ids = {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id, "bos": tokenizer.bos_id,
           "eos": tokenizer.eos_id}
    for name, value in ids.items():
        if spec["special_ids"][name] != value:
            raise BundleError(f"{file}: special_ids.{name} is {spec['special_ids'][name]}, "
                              f"but {tokenizer_path} uses id {value}")


def check_flat_files(path, spec, tokenizers):
    """The flat files (kit/runtime/flat_files.py), which this runtime does not read but
    an app without a JSON parser reads instead of bundle.json: each checked against its
    SHA-256, then bundle.txt against bundle.json and each vocabulary file against its
    side's tokenizer (`tokenizers`, a `kit.tokenizers.TokenizerPair`)."""
    flat = spec["flat"]

    def text(name):
        content = verified_bytes(path, name, spec["files"])
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BundleError(f"{path / name} is not UTF-8 (byte {error.start})") from None

    for side in SIDES:
        name = flat["vocabulary"][side]
        if name is None:
            continue
        content = text(name)
        try:
            tokens = read_vocabulary_text(content)
        except BundleError as error:
            raise BundleError(f"{path / name}: {error}") from None
        if tokens != list(getattr(tokenizers, side).vocabulary):
            raise BundleError(f"{path / name} is not the vocabulary of the {side} tokenizer "
                              f"{spec['tokenizer'][side]['files'][0]}: export again")
    file, content = path / flat["metadata"], text(flat["metadata"])
    try:
        found = read_flat_metadata(content)
    except BundleError as error:
        raise BundleError(f"{file}: {error}") from None
    found, expected = list(found.items()), flat_metadata_pairs(spec, spec["files"])
    if found != expected:
        i = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b),
                 min(len(found), len(expected)))

        def entry(pairs):
            return shown("=".join(pairs[i])) if i < len(pairs) else "no more entries"

        raise BundleError(f"{file} does not agree with {path / BUNDLE_JSON}: entry {i + 1} "
                          f"is {entry(found)}, expected {entry(expected)}: export again")
