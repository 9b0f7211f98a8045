"""bundle.txt and the vocabulary files (kit/runtime/flat_files.py): what an app without a
JSON parser reads instead of bundle.json. The exported ones agree with bundle.json and
the tokenizers; the text formats round-trip any token; export writes them in order.
Damaged ones are refused at load: tests/kit/test_runtime_hostile.py."""

import copy
import hashlib
import json
import shutil

import pytest

from kit.runtime import BUNDLE_JSON, TFLITE_FILE, BundleError
from kit.runtime.bundle_format import write_bundle_json
from kit.runtime.flat_files import (
    flat_entry,
    flat_metadata_pairs,
    flat_metadata_text,
    read_flat_metadata,
    read_vocabulary_text,
    vocabulary_text,
)
from kit.runtime.recipes import RECIPES
from kit.tokenizers import SPECIAL_TOKENS, TokenizerPair, load_tokenizer

# The keys a C program relies on, in their order, for two char sides.
KEYS = ["format_version", "recipe", "model_file", "source_length", "target_length",
        "max_new_tokens", "pad_id", "unk_id", "bos_id", "eos_id", "source_vocab_size",
        "target_vocab_size", "source_tokenizer", "source_tokenizer_size",
        "source_vocabulary", "target_tokenizer", "target_tokenizer_size",
        "target_vocabulary", "num_decoder_layers", "encode", "decode_step", "encoded",
        "caches", "variants", "sha256.model.tflite", "sha256.source_tokenizer.json",
        "sha256.target_tokenizer.json", "sha256.source_vocab.txt", "sha256.target_vocab.txt"]


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_bundle_txt_states_what_bundle_json_says(tiny_bundles, recipe):
    bundle = tiny_bundles[0] / recipe
    spec = json.loads((bundle / BUNDLE_JSON).read_text())
    raw = (bundle / "bundle.txt").read_bytes()
    text = raw.decode("utf-8")
    assert "\r" not in text and text.endswith("\n") and "\n\n" not in text
    lines = text.split("\n")[:-1]
    assert 2 <= sum(line.startswith("#") for line in lines) <= 3
    assert all(line.startswith("#") for line in lines[:2])
    values = read_flat_metadata(text)
    assert list(values) == KEYS
    assert spec["flat"] == {"metadata": "bundle.txt",
                            "vocabulary": {"source": "source_vocab.txt",
                                           "target": "target_vocab.txt"}}
    S, T, L = spec["source_length"], spec["target_length"], spec["model"]["num_decoder_layers"]
    encode, decode = spec["signatures"]["encode"], spec["signatures"]["decode_step"]
    expected = {
        "format_version": "6", "recipe": recipe, "model_file": TFLITE_FILE,
        "source_length": str(S), "target_length": str(T), "max_new_tokens": str(T - 1),
        **{f"{name}_id": str(spec["special_ids"][name]) for name in ("pad", "unk", "bos", "eos")},
        "source_vocab_size": str(spec["vocab_size"]["source"]),
        "target_vocab_size": str(spec["vocab_size"]["target"]),
        "source_tokenizer": "char", "target_tokenizer": "char",
        "source_tokenizer_size": str(spec["vocab_size"]["source_tokenizer"]),
        "target_tokenizer_size": str(spec["vocab_size"]["target_tokenizer"]),
        "source_vocabulary": "source_vocab.txt", "target_vocabulary": "target_vocab.txt",
        "num_decoder_layers": str(spec["model"]["num_decoder_layers"]),
        "encode": "encode", "decode_step": "decode_step",
        # Every output of encode is an input of each step; the caches are the step's
        # inputs it also returns; in bundle.json's order, which sorts names.
        "encoded": ",".join(sorted(["source_mask", *(f"cross_{kind}_{i}" for i in range(L)
                                                     for kind in ("key", "value"))])),
        "caches": ",".join(sorted(f"self_{kind}_{i}" for i in range(L)
                                  for kind in ("key", "value"))),
        "variants": " ".join(f"{v['batch']}x{v['source_length']}:{v['encode']}:"
                             f"{v['decode_step']}" for v in spec["variants"]),
        **{f"sha256.{name}": _sha256(bundle / name) for name in (
            TFLITE_FILE, "source_tokenizer.json", "target_tokenizer.json",
            "source_vocab.txt", "target_vocab.txt")},
    }
    assert values == expected
    assert values["encoded"].split(",") == list(encode["outputs"])
    assert set(values["caches"].split(",")) == set(decode["outputs"]) - {"logits"}
    assert values["variants"].split()[0] == f"1x{S}:encode:decode_step"
    if recipe != "int8":  # the default pairs: batch 1, 4 and 32; int8 has one
        assert values["variants"].split()[1:] == [f"4x{S}:encode_b4_s{S}:decode_step_b4_s{S}",
                                                  f"32x{S}:encode_b32_s{S}:decode_step_b32_s{S}"]
    # bundle.json records bundle.txt's hash, and bundle.txt those of the files before it.
    assert spec["files"]["bundle.txt"] == hashlib.sha256(raw).hexdigest()
    assert {f"sha256.{name}": digest for name, digest in spec["files"].items()
            if name != "bundle.txt"} == {key: value for key, value in values.items()
                                         if key.startswith("sha256.")}


@pytest.mark.slow
def test_the_vocabulary_files_are_the_tokenizers_vocabularies(tiny_bundles):
    bundle = tiny_bundles[0] / "float32"
    for side in ("source", "target"):
        text = (bundle / f"{side}_vocab.txt").read_bytes().decode("utf-8")
        vocabulary = load_tokenizer(bundle / f"{side}_tokenizer.json").vocabulary
        assert read_vocabulary_text(text) == list(vocabulary)
        assert text.split("\n")[:4] == list(SPECIAL_TOKENS) and text.endswith("\n")
        assert text.count("\n") == len(vocabulary)  # the dates hold no \, LF or CR


def test_a_vocabulary_file_holds_any_token_on_one_line():
    tokens = [*SPECIAL_TOKENS, "\\", "\n", "\r", "\r\n", "a\\nb", "\\\\", "x\u2028y", "\x85",
              "\x0b", "=", "#", " ", "é", "語"]
    text = vocabulary_text(tokens)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(tokens)
    assert lines[4:9] == ["\\\\", "\\n", "\\r", "\\r\\n", "a\\\\nb"]
    assert lines[10:] == ["x\u2028y", "\x85", "\x0b", "=", "#", " ", "é", "語", ""]
    assert read_vocabulary_text(text) == tokens
    assert read_vocabulary_text(vocabulary_text([])) == []


@pytest.mark.parametrize("text, fragment", [
    ("<pad>\n<unk>", "cut short"),
    ("a\\\n", "line 1: 'a\\\\' has a backslash"),
    ("a\nb\\t\n", "line 2: 'b\\\\t' has a backslash"),
    ("<pad>\r\n", "line 1 holds a carriage return"),
])
def test_a_damaged_vocabulary_text_is_one_line(text, fragment):
    with pytest.raises(BundleError) as raised:
        read_vocabulary_text(text)
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


def test_bundle_txt_lines_are_split_at_the_first_equals_sign():
    assert read_flat_metadata("# a comment = not a key\nkey=a=b\n\nempty=\n#x=1") == {
        "key": "a=b", "empty": ""}
    for text, fragment in [("key\n", "line 1 is neither key=value"),
                           ("#\n=value\n", "line 2 is neither"),
                           ("a=1\nb=2\na=3\n", "line 3 gives a a second time"),
                           ("a=1\r\n", "carriage return")]:
        with pytest.raises(BundleError, match=fragment):
            read_flat_metadata(text)


def _with_sides(spec, source, target):
    """`spec` with each side's tokenizer of the type given, as export would record it."""
    spec = copy.deepcopy(spec)
    for side, kind in (("source", source), ("target", target)):
        names = [f"{side}_tokenizer.json"] + ([f"{side}_tokenizer.model"]
                                              if kind == "sentencepiece" else [])
        spec["tokenizer"][side] = {"type": kind, "files": names}
    spec["flat"] = flat_entry({"source": source, "target": target})
    return spec


@pytest.mark.slow
def test_each_tokenizer_type_has_its_keys(tiny_bundles):
    """A word side names its vocabulary file, a sentencepiece side its .model; the
    exported sides of both kinds: tests/training/test_own_data.py."""
    spec = json.loads((tiny_bundles[0] / "float32" / BUNDLE_JSON).read_text())
    spec = _with_sides(spec, "sentencepiece", "word")
    assert spec["flat"]["vocabulary"] == {"source": None, "target": "target_vocab.txt"}
    hashes = {name: f"{i:064x}" for i, name in enumerate(
        ["model.tflite", "source_tokenizer.json", "source_tokenizer.model",
         "target_tokenizer.json", "target_vocab.txt"])}
    pairs = flat_metadata_pairs(spec, hashes)
    keys = [key for key, _ in pairs]
    assert keys[12:18] == ["source_tokenizer", "source_tokenizer_size",
                           "source_tokenizer_model", "target_tokenizer",
                           "target_tokenizer_size", "target_vocabulary"]
    assert dict(pairs)["source_tokenizer_model"] == "source_tokenizer.model"
    assert [value for key, value in pairs if key.startswith("sha256.")] == list(hashes.values())
    assert read_flat_metadata(flat_metadata_text(spec, hashes)) == dict(pairs)
    # A name that would break a line is refused, not written.
    spec["recipe"] = "float32\nrecipe=int8"
    with pytest.raises(BundleError, match="cannot be a line of bundle.txt"):
        flat_metadata_text(spec, hashes)


@pytest.mark.slow
def test_export_writes_the_flat_files_before_bundle_json(tiny_bundles, tmp_path,
                                                         monkeypatch):
    """Vocabularies, then bundle.txt (their hashes), then bundle.json (all hashes): the
    same bytes again from the same spec, and nothing at all from a spec that fails its
    checks."""
    import kit.runtime.bundle_format as bundle_format

    exported = tiny_bundles[0] / "float32"
    spec = json.loads((exported / BUNDLE_JSON).read_text())
    del spec["files"]
    tokenizers = TokenizerPair(*(load_tokenizer(exported / f"{side}_tokenizer.json")
                                 for side in ("source", "target")))
    directory = tmp_path / "bundle"
    directory.mkdir()
    for name in (TFLITE_FILE, "source_tokenizer.json", "target_tokenizer.json"):
        shutil.copyfile(exported / name, directory / name)

    bad = {**spec, "special_ids": {**spec["special_ids"], "eos": 2}}
    with pytest.raises(BundleError, match="four different ids"):
        write_bundle_json(directory, bad, tokenizers)
    assert sorted(p.name for p in directory.iterdir()) == [
        TFLITE_FILE, "source_tokenizer.json", "target_tokenizer.json"]

    written = []
    for name in ("atomic_write", "write_json"):
        original = getattr(bundle_format, name)
        monkeypatch.setattr(bundle_format, name, lambda path, data, original=original: (
            written.append(path.name), original(path, data))[-1])
    write_bundle_json(directory, spec, tokenizers)
    assert written == ["source_vocab.txt", "target_vocab.txt", "bundle.txt", BUNDLE_JSON]
    for name in written:
        assert (directory / name).read_bytes() == (exported / name).read_bytes(), name
