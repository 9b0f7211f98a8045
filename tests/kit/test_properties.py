"""Property-based tests (hypothesis) of the device side: the tokenizer, bundle.json's
checks and the runtime's inputs. Each property holds for every input hypothesis tries:
no exception but the documented one, one-line messages, bounded time.
"""

import contextlib
import copy
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kit.runtime import BUNDLE_JSON, Bundle, BundleError
from kit.runtime import cli as decode_cli
from kit.tokenizers import EOS_ID, SPECIAL_TOKENS, UNK_ID, UNK_TEXT, CharTokenizer, load_tokenizer

REPO = Path(__file__).resolve().parents[2]

# Any code point, surrogates and NULs included, with the awkward ones made likely.
AWKWARD = ["\x00", "\ud800", "\udcff", "\ufffd", "\n", "\r", "\u2028", "\u202e", "\U0001f642"]
ANY_CHARACTER = st.one_of(st.characters(codec=None, exclude_categories=()),
                          st.sampled_from(AWKWARD))
ANY_TEXT = st.text(ANY_CHARACTER, max_size=80)
# What a file can hold: no lone surrogates (UTF-8 cannot encode them).
FILE_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)

# No example database: the tree is shared, and failures are reported with their input.
FAST = settings(max_examples=150, deadline=1000, database=None)


def slow(max_examples, deadline):
    """Settings for properties that load a bundle or start a process (deadline in ms)."""
    return settings(max_examples=max_examples, deadline=deadline, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def time_limit(seconds):
    """Fails the test instead of hanging: a loop that never ends is interrupted."""
    def expire(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- the tokenizer ----------------------------------------------------------------------

@FAST
@given(st.lists(FILE_TEXT, max_size=6))
def test_known_characters_round_trip(texts):
    tokenizer = CharTokenizer.train(texts)
    for text in texts:
        ids = tokenizer.encode(text)
        assert len(ids) == len(text)
        assert all(len(SPECIAL_TOKENS) <= i < tokenizer.vocab_size for i in ids)
        assert tokenizer.unknown_count(text) == 0
        assert tokenizer.decode(ids) == text


@FAST
@given(st.lists(FILE_TEXT, max_size=4), ANY_TEXT)
def test_any_text_encodes_in_range_and_counts_its_unknowns(texts, text):
    tokenizer = CharTokenizer.train(texts)
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.unknown_count(text) == ids.count(UNK_ID)
    unknown = tokenizer.unknown_characters(text)
    assert len(unknown) == len(set(unknown)) and all(tokenizer.encode(c) == [UNK_ID]
                                                     for c in unknown)
    known = set(tokenizer.vocabulary[len(SPECIAL_TOKENS):])
    assert tokenizer.decode(ids) == "".join(c if c in known else UNK_TEXT for c in text)


@FAST
@given(st.lists(FILE_TEXT, max_size=4), st.data())
def test_any_ids_in_the_vocabulary_decode(texts, data):
    tokenizer = CharTokenizer.train(texts)
    ids = data.draw(st.lists(st.integers(0, tokenizer.vocab_size - 1), max_size=30))
    text = tokenizer.decode(ids)
    assert len(text) <= len(ids)
    assert text == tokenizer.decode(ids[:ids.index(EOS_ID)] if EOS_ID in ids else ids)


@slow(max_examples=40, deadline=2000)
@given(st.lists(FILE_TEXT, max_size=6))
def test_save_and_load_give_the_same_ids(texts):
    tokenizer = CharTokenizer.train(texts)
    content = (json.dumps(tokenizer.to_dict(), ensure_ascii=False) + "\n").encode()
    loaded = load_tokenizer("tokenizer.json", content=content)
    assert loaded == tokenizer
    for text in texts:
        assert loaded.encode(text) == tokenizer.encode(text)


# -- bundle.json: any change to what the runtime reads is refused, in one line ---------

def _paths(value, prefix=()):
    """Every path (a tuple of keys and indices) into a JSON value, itself included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


# Parts of bundle.json written for people, which the runtime does not read: a change
# there may load. Everything else the runtime relies on or bundle.txt repeats (the
# recipe, the source vocabulary size, which no signature shows), so a change there is
# refused.
NOTES = ("quantization", "model", "decoding", "source_run")
UNCHECKED = tuple((key,) for key in NOTES)

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text(ANY_CHARACTER, max_size=12),
              st.sampled_from([0, 1, -1, 2, 4, 12, 44, 64, 2**31, "float32", "int32", [1]])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                              max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def scratch_bundle(tiny_bundles, tmp_path_factory):
    """A copy of the float32 bundle whose bundle.json the properties rewrite, its
    original spec, and what it makes of one sentence."""
    out, _ = tiny_bundles
    path = tmp_path_factory.mktemp("scratch") / "bundle"
    shutil.copytree(out / "float32", path)
    spec = json.loads((path / BUNDLE_JSON).read_text())
    return path, spec, Bundle.load(path).translate("1 May 1990")


def _mutate(spec, path, kind, value):
    """A deep copy of `spec` with the value at `path` replaced or deleted, or a key
    added to it; None when `kind` does not apply there."""
    spec = copy.deepcopy(spec)
    if not path:
        return value if kind == "replace" else None
    parent = spec
    for key in path[:-1]:
        parent = parent[key]
    if kind == "replace":
        parent[path[-1]] = value
    elif kind == "delete":
        del parent[path[-1]]
    elif isinstance(parent[path[-1]], dict):
        parent[path[-1]]["extra key"] = value
    else:
        return None
    return spec


@pytest.mark.slow
@slow(max_examples=120, deadline=3000)
@given(st.data())
def test_any_change_to_bundle_json_is_refused_in_one_line(scratch_bundle, data):
    path, original, translation = scratch_bundle
    where = data.draw(st.sampled_from(sorted(_paths(original), key=repr)), label="path")
    kind = data.draw(st.sampled_from(["replace", "delete", "add key"]), label="kind")
    value = data.draw(JSON_VALUES, label="value")
    mutated = _mutate(original, where, kind, value)
    text = json.dumps(mutated)
    assume(mutated is not None and text != json.dumps(original))
    (path / BUNDLE_JSON).write_text(text)
    try:
        with time_limit(20):
            bundle = Bundle.load(path)
            result = bundle.translate("1 May 1990")
    except BundleError as error:
        assert str(error) and "\n" not in str(error)
        return
    # Loaded: the change was in notes for people, and decoding is what it was.
    assert any(where[:len(part)] == part for part in UNCHECKED), \
        f"{where} changed and was not refused"
    assert result == translation


@pytest.mark.slow
@slow(max_examples=60, deadline=3000)
@given(st.data())
def test_any_damaged_bundle_json_is_refused_in_one_line(scratch_bundle, data):
    path, original, _ = scratch_bundle
    raw = json.dumps(original, indent=2).encode()
    if data.draw(st.booleans(), label="truncate"):
        damaged = raw[:data.draw(st.integers(0, len(raw) - 1), label="cut")]
    else:
        damaged = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            damaged[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        damaged = bytes(damaged)
    assume(damaged != raw)
    (path / BUNDLE_JSON).write_bytes(damaged)
    try:
        with time_limit(20):
            Bundle.load(path)
    except BundleError as error:
        assert str(error) and "\n" not in str(error)
        return
    # Loaded: the damage was invisible to JSON (a space) or in what the runtime does
    # not rely on.
    loaded = json.loads(damaged)
    changed = [where for where in _paths(original) if where and _differs(loaded, original, where)]
    assert all(any(where[:len(part)] == part for part in UNCHECKED) for where in changed), \
        changed


def _differs(a, b, where):
    for key in where:
        try:
            a = a[key]
        except (KeyError, IndexError, TypeError):
            return True
        b = b[key]
    return json.dumps(a) != json.dumps(b)


# -- the runtime's inputs: any text decodes (or is refused) in bounded time -------------

@pytest.fixture(scope="module")
def bundle(tiny_bundles):
    out, _ = tiny_bundles
    return Bundle.load(out / "float32")


@pytest.mark.slow
@slow(max_examples=80, deadline=2000)
@given(ANY_TEXT, st.booleans())
def test_any_text_decodes_in_bounded_time(bundle, text, strict):
    with time_limit(10):
        translated = bundle.translate(text)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            args = decode_cli.build_parser().parse_args(
                ["bundle"] + (["--strict"] if strict else []))
            line, decoded = decode_cli._decode(bundle, "line 1", text, args)
    assert isinstance(translated, str)
    assert len(translated) <= bundle.target_length
    messages = stderr.getvalue().splitlines()
    assert len(messages) <= 1
    if not text.strip():
        assert (line, decoded, messages, translated) == ("", True, [], "")
    elif decoded:
        assert line == translated
    else:
        assert strict and line == "" and messages[0].startswith("error:")


@pytest.mark.slow
@slow(max_examples=6, deadline=None)
@given(st.lists(st.binary(max_size=50).map(lambda b: b.replace(b"\n", b"")), min_size=1,
                max_size=12))
def test_any_bytes_on_stdin_give_one_output_line_each(tiny_bundles, lines):
    out, _ = tiny_bundles
    result = subprocess.run([sys.executable, "-m", "kit", "decode", str(out / "float32")],
                            input=b"\n".join(lines) + b"\n", capture_output=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30)
    errors = result.stderr.decode("utf-8", "replace").splitlines()
    assert result.stdout.count(b"\n") == len(lines), errors
    assert all(line.startswith(("error:", "warning:")) for line in errors), errors
    bad = []
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(line)
    assert sum(line.startswith("error:") for line in errors) == len(bad)
    assert result.returncode == (1 if bad else 0)
