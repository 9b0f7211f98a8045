"""The bundle directory's format: what bundle.json holds, its version, the checks it
must pass, and writing and reading it.

    BUNDLE_DIR/
      model.tflite            signature pairs `encode` and `decode_step`, and one pair
                              per other batch and source length (bundle.json's
                              "variants")
      source_tokenizer.json   kit.tokenizers: what turns the input text into ids
      target_tokenizer.json   what turns the generated ids into text
      source_tokenizer.model  a SentencePiece tokenizer's model, beside its JSON
      target_tokenizer.model  (bundle.json's "tokenizer" lists each side's files)
      source_vocab.txt        a char or word tokenizer's vocabulary, one token a line
      target_vocab.txt        (kit/runtime/flat_files.py)
      bundle.txt              bundle.json's decoding facts as key=value lines, for apps
                              without a JSON parser (kit/runtime/flat_files.py)
      bundle.json             what a device needs to write the loop: S, T, special
                              ids, each side's tokenizer, every signature's input and
                              output names, shapes and dtypes, every file's SHA-256
      report.json             what export measured (not needed for decoding)

Export writes it (`bundle_spec`, `write_bundle_json`), the runtime reads it
(`read_bundle_json`). Imports neither TensorFlow nor Keras.
"""

import hashlib
import json
import os
import re
import stat
from pathlib import Path

from kit.files import atomic_write, json_text, write_json
from kit.runtime._spec_checks import (
    BundleError,
    exact_object,
    integer,
    number,
    plain_file_name,
    shown,
)
from kit.runtime.flat_files import (
    FLAT_METADATA,
    check_flat,
    flat_entry,
    flat_files,
    flat_metadata_text,
    vocabulary_text,
)
from kit.runtime.recipes import CHECKED_ON
from kit.runtime.signature_checks import check_signatures
from kit.runtime.signatures import DECODE_STEP, ENCODE, variant_signatures
from kit.tokenizers import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE

# 2: bundle.json records the SHA-256 of the files it describes ("files"), and every
# field is checked at load. A version 1 bundle has no checksums to check.
# 3: one K and one V tensor per decoder layer, in both signatures (self_key_i,
# self_value_i, cross_key_i, cross_value_i), each self-attention cache output produced
# by its own in-place update, instead of one stacked (1, L, 2, T, H, Dh) cache.
# 4: a tokenizer per side: "tokenizer" is {"source": {"type", "files"}, "target": {...}}
# (no "tokenizer_file"), and vocab_size holds source_tokenizer and target_tokenizer.
# 5: keys and values stored (B, H, L, Dh), L = S across and T in the cache, which a
# step reads with no transpose, instead of (1, L, H, Dh); and `variants`, signature
# pairs of other batches and source lengths (kit/runtime/signature_checks.py).
# 6: "flat": bundle.txt (the decoding facts as key=value lines) and, for each char or
# word side, a vocabulary file of one token a line (kit/runtime/flat_files.py), for
# apps without a JSON parser; "files" holds their SHA-256 too.
BUNDLE_FORMAT_VERSION = 6
BUNDLE_JSON = "bundle.json"
TFLITE_FILE = "model.tflite"
REPORT_JSON = "report.json"

# Sanity bounds for bundle.json's numbers, far above any model this kit makes, so that
# a damaged or hostile file is refused before anything is sized from it.
MAX_BUNDLE_JSON_BYTES = 4 << 20  # an exported bundle.json is a few KB
MAX_BUNDLE_LENGTH = 1 << 20  # S and T: a sanity bound on a bundle.json read (training's is 1024)
MAX_VOCAB_SIZE = 1 << 24

# The keys of a bundle.json of this format, and which of them hold free-form notes for
# people (what export measured or chose), which the runtime does not read.
_SPEC_KEYS = frozenset({"format_version", "recipe", "quantization", "model_file",
                        "files", "source_length", "target_length", "special_ids",
                        "vocab_size", "model", "signatures", "variants", "decoding",
                        "source_run", "flat",  # flat: kit/runtime/flat_files.py
                        "tokenizer"})  # tokenizer: {side: {"type", "files"}}
_NOTES = ("quantization", "model", "decoding", "source_run")
_SPECIAL_NAMES = ("pad", "unk", "bos", "eos")
SIDES = ("source", "target")
_VOCAB_NAMES = ("source", "target", "source_tokenizer", "target_tokenizer")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def bundle_spec(recipe, config, tokenizers, signatures, quantization, source_run,
                variants=None):
    """The contents of bundle.json: all a device needs to write the decode loop.

    Args:
        recipe: the quantization recipe's name.
        config: the model config the file was converted from, as a dict
            (`TransformerConfig.to_dict()`: the int8 file's attention mask bias differs
            from the run's).
        tokenizers: the bundle's `kit.tokenizers.TokenizerPair`, saved in the bundle
            directory as source_tokenizer.json and target_tokenizer.json.
        signatures: `signature_specs` of the file.
        quantization: what the recipe did (export's notes and chosen values).
        source_run: where the model came from (path, data, metrics; for people).
        variants: the file's (batch, source_length) signature pairs (see
            `kit.runtime.signature_checks`); None: the (1, S) pair only.
    """
    S = config["max_source_length"]
    variants = [{"batch": batch, "source_length": length,
                 **dict(zip((ENCODE, DECODE_STEP), variant_signatures(batch, length, S)))}
                for batch, length in (variants or [(1, S)])]
    return {
        "format_version": BUNDLE_FORMAT_VERSION,
        "recipe": recipe,
        "quantization": quantization,
        "model_file": TFLITE_FILE,
        # What an app loads for each side: "char" or "word" (the JSON's vocabulary)
        # or "sentencepiece" (the .model file, for SentencePieceProcessor); every file
        # the tokenizer uses, its JSON first. The source side encodes the input text,
        # the target side decodes the generated ids.
        "tokenizer": {
            side: {"type": tokenizer.TYPE, "files": tokenizer.files(name)}
            for side, tokenizer, name in (("source", tokenizers.source, SOURCE_TOKENIZER_FILE),
                                          ("target", tokenizers.target, TARGET_TOKENIZER_FILE))},
        # The same facts as key=value lines (bundle.txt), and each char or word side's
        # vocabulary one token a line: for apps without a JSON parser.
        "flat": flat_entry({"source": tokenizers.source.TYPE,
                            "target": tokenizers.target.TYPE}),
        "source_length": config["max_source_length"],
        "target_length": config["max_target_length"],
        # The kit's tokenizers all use these ids (kit/tokenizers/base.py).
        "special_ids": {"pad": tokenizers.target.pad_id, "unk": tokenizers.target.unk_id,
                        "bos": tokenizers.target.bos_id, "eos": tokenizers.target.eos_id},
        "vocab_size": {"source": config["source_vocab_size"],
                       "target": config["target_vocab_size"],
                       "source_tokenizer": tokenizers.source.vocab_size,
                       "target_tokenizer": tokenizers.target.vocab_size},
        "model": {**config, "head_dim": config["model_dim"] // config["num_heads"]},
        "signatures": signatures,
        # Signature pairs of other batches and shorter sources, sharing the weights: a
        # runtime may decode a source of n tokens with the pair of the smallest
        # source_length >= n (cut its ids to that length), and several sources at once
        # with a pair of batch > 1 (every row at the same position).
        "variants": variants,
        "decoding": {
            "source_ids": "the source tokenizer's ids of the text (no BOS/EOS), cut to "
                          "source_length and right-padded with the pad id",
            "output": "the target tokenizer's decode of the generated ids",
            "loop": "run encode once and pass all its outputs (source_mask, cross_key_i, "
                    "cross_value_i) to every decode_step; self_key_i = self_value_i = "
                    "zeros; token = bos; for position in 0 .. target_length - 2: run "
                    "decode_step(token_ids=[[token]], position=[position], ...), "
                    "token = argmax(logits[0]); stop after eos",
            "kv_cache": "each self_key_i / self_value_i output is the same tensor as the "
                        "input of that name, updated in place at `position`: bind one "
                        "buffer as both input and output (no copy per step), or copy "
                        "each output to its input before the next step",
            "max_new_tokens": config["max_target_length"] - 1,
            "io_types": "inputs and outputs are float32 and int32 in every recipe; "
                        "quantization is internal to the file",
            "checked_on": CHECKED_ON.get(recipe, {}),
        },
        "source_run": source_run,
    }


def write_bundle_json(directory, spec, tokenizers):
    """Writes the flat files of `spec` (from `bundle_spec`) into `directory`: each
    char or word side's vocabulary file, then bundle.txt; then `spec` as bundle.json,
    with the SHA-256 of the model, tokenizer and flat files. Each file atomically. The
    model and tokenizer files must be in `directory` already: `Bundle.load` refuses
    files that are not the ones recorded.

    Args:
        tokenizers: the `kit.tokenizers.TokenizerPair` saved in `directory`, whose
            vocabularies the vocabulary files hold.

    Raises:
        BundleError if `spec` is not a valid bundle.json or a file is missing.
    """
    directory = Path(directory)
    # The order bundle.json lists its names in, which bundle.txt's lists follow.
    spec = json.loads(json_text(spec))
    files = {}
    for name in (spec["model_file"], *tokenizer_files(spec)):
        try:
            files[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise BundleError(f"{directory} is missing {name}: write it before "
                              f"{BUNDLE_JSON}") from None
    # Made in memory and checked with the rest before any is written.
    texts = {spec["flat"]["vocabulary"][side]: vocabulary_text(getattr(tokenizers, side)
                                                               .vocabulary)
             for side in SIDES if spec["flat"]["vocabulary"][side] is not None}
    for name, text in texts.items():
        files[name] = _sha256(text)
    texts[FLAT_METADATA] = flat_metadata_text(spec, files)
    files[FLAT_METADATA] = _sha256(texts[FLAT_METADATA])
    spec = {**spec, "files": files}
    check_bundle_spec(spec, directory / BUNDLE_JSON)
    for name, text in texts.items():
        atomic_write(directory / name, text)
    write_json(directory / BUNDLE_JSON, spec)


def read_bundle_json(path):
    """The parsed and checked `bundle.json` of bundle directory `path`.

    Raises:
        BundleError, one line, for a missing, damaged or inconsistent file.
    """
    file = Path(path) / BUNDLE_JSON
    raw = read_regular_file(file, f"{path} has no {BUNDLE_JSON}: not a bundle directory",
                             limit=MAX_BUNDLE_JSON_BYTES)
    try:
        spec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BundleError(f"{file} is damaged: not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise BundleError(f"{file} is damaged: {error.msg} at line {error.lineno}, "
                          f"column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        # Valid JSON that Python refuses: an integer of more than 4300 digits, or
        # arrays nested deeper than the parser's recursion limit.
        raise BundleError(f"{file} is damaged: {str(error).splitlines()[0]}") from None
    check_bundle_spec(spec, file)
    return spec


def check_bundle_spec(spec, file=BUNDLE_JSON):
    """Checks every field of a parsed bundle.json that the runtime relies on: types,
    ranges, every nested key, and that S, T, the vocabulary sizes and the special ids
    agree with the signatures it describes.

    Args:
        spec: the parsed JSON.
        file: its path, for the message.

    Raises:
        BundleError, one line naming `file`, the field and the value.
    """
    def fail(message):
        raise BundleError(f"{file}: {message}")

    if not isinstance(spec, dict):
        fail(f"holds a JSON {type(spec).__name__}, expected an object: not a bundle file")
    if "format_version" not in spec:
        fail("has no format_version: not a bundle file")
    version = spec["format_version"]
    if integer(version) != BUNDLE_FORMAT_VERSION:
        fail(f"the bundle has format version {shown(version)}, and this runtime reads "
             f"version {BUNDLE_FORMAT_VERSION} only: export it again with this kit")
    missing = sorted(_SPEC_KEYS - set(spec))
    if missing:
        fail(f"lacks {', '.join(missing)}")
    extra = sorted(set(spec) - _SPEC_KEYS, key=str)
    if extra:
        fail(f"has unknown keys {', '.join(map(shown, extra))} (not a format "
             f"{BUNDLE_FORMAT_VERSION} bundle file)")
    for name in _NOTES:
        if not isinstance(spec[name], dict):
            fail(f"{name} must be an object. Received: {shown(spec[name])}")
    if not isinstance(spec["recipe"], str) or not spec["recipe"]:
        fail(f"recipe must be a non-empty string. Received: {shown(spec['recipe'])}")
    if not plain_file_name(spec["model_file"]):
        fail(f"model_file must be a file name in the bundle directory. "
             f"Received: {shown(spec['model_file'])}")
    sides = exact_object(spec, "tokenizer", SIDES, fail)
    seen = {spec["model_file"]}
    for side in SIDES:
        kind = exact_object(sides, side, ("type", "files"), fail, f"tokenizer.{side}")
        if not isinstance(kind["type"], str) or not kind["type"]:
            fail(f"tokenizer.{side}.type must be a non-empty string. "
                 f"Received: {shown(kind['type'])}")
        names = kind["files"]
        if not isinstance(names, list) or not names \
                or not all(plain_file_name(name) for name in names) \
                or len(set(names)) != len(names) or seen & set(names):
            fail(f"tokenizer.{side}.files must list distinct file names in the bundle "
                 f"directory, its JSON first, none of them model_file or the other "
                 f"side's. Received: {shown(names)}")
        seen.update(names)
    check_flat(spec, seen | {BUNDLE_JSON, REPORT_JSON}, fail)
    files = exact_object(spec, "files", bundle_files(spec), fail)
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            fail(f"files.{name} must be a SHA-256 (64 hex digits). Received: {shown(digest)}")

    number(spec, "source_length", spec["source_length"], 1, MAX_BUNDLE_LENGTH, fail)
    T = number(spec, "target_length", spec["target_length"], 2, MAX_BUNDLE_LENGTH, fail)
    sizes = exact_object(spec, "vocab_size", _VOCAB_NAMES, fail)
    for name in _VOCAB_NAMES:
        number(spec, f"vocab_size.{name}", sizes[name], 4, MAX_VOCAB_SIZE, fail)
    ids = exact_object(spec, "special_ids", _SPECIAL_NAMES, fail)
    smallest = min(sizes["source"], sizes["target"])
    for name in _SPECIAL_NAMES:
        number(spec, f"special_ids.{name}", ids[name], 0, smallest - 1, fail)
    if len(set(ids.values())) != len(ids):
        fail(f"special_ids must be four different ids. Received: {shown(ids)}")

    # The decoding contract (README, "The exported file"): every signature pair, with
    # its batch, its source length, T and the target vocabulary V on the axes the loop
    # relies on.
    check_signatures(spec, T, sizes["target"], fail)
    return spec


def tokenizer_files(spec):
    """Every tokenizer file a bundle.json names: the source's, then the target's."""
    return [name for side in SIDES for name in spec["tokenizer"][side]["files"]]


def bundle_files(spec):
    """Every file a checked bundle.json records the SHA-256 of, in the order export
    writes them: the model, the tokenizer files, the vocabulary files, bundle.txt."""
    return [spec["model_file"], *tokenizer_files(spec), *flat_files(spec)]


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_regular_file(file, missing, limit=None):
    """The bytes of `file`, a regular file (or a link to one) of at most `limit` bytes;
    BundleError with the message `missing` if there is none. A FIFO would block the
    read and a device such as /dev/zero would never end it, so neither is opened."""
    try:
        found = os.stat(file)
        if not stat.S_ISREG(found.st_mode):
            raise BundleError(f"{file} is not a regular file")
        if limit is not None and found.st_size > limit:
            raise BundleError(f"{file} is larger than {limit >> 20} MB: not a bundle file "
                              "(export writes a few KB)")
        with open(file, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise BundleError(missing) from None
    except OSError as error:
        raise BundleError(f"cannot read {file}: {error.strerror or error}") from None
