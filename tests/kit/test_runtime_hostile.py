"""kit/runtime against hostile input: the device-side rows of the "hostile input" issue.

Each test reproduces what a hostile user did (a swapped file, an edited bundle.json, a
bad byte on stdin, a full disk, ...) and checks the fix: one "error:" line on stderr
and a non-zero exit, or a warning and aligned outputs, never a traceback, never a
hang. Commands run in a subprocess with a timeout, so a hang fails the test.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kit.runtime import BUNDLE_FORMAT_VERSION, BUNDLE_JSON, TFLITE_FILE, Bundle, BundleError
from kit.runtime.steps import MODES
from kit.tokenizers import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE, CharTokenizer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
TIMEOUT = 30  # seconds; a decode of a few inputs with the tiny model takes about 2


def decode(*args, stdin=b"", stdout=subprocess.PIPE, timeout=TIMEOUT):
    """`python -m kit decode ARGS` in a fresh interpreter, bounded in time."""
    return subprocess.run([sys.executable, "-m", "kit", "decode", *map(_arg, args)],
                          input=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=REPO,
                          env=ENV, timeout=timeout)


def _arg(value):
    return value if isinstance(value, bytes) else str(value)


def stderr_lines(result):
    return result.stderr.decode("utf-8", "replace").splitlines()


def assert_one_error(result, *fragments, code=1):
    """The kit's rule for a user's error: exactly one stderr line, "error: ...", exit
    `code`, no traceback."""
    lines = stderr_lines(result)
    assert result.returncode == code, lines
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for fragment in fragments:
        assert fragment in lines[0], lines
    return lines[0]


def assert_one_line(error):
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, message
    return message


@pytest.fixture
def bundle_copy(tiny_bundles, tmp_path):
    """A writable copy of the float32 bundle, for a test to damage."""
    out, _ = tiny_bundles
    copy = tmp_path / "bundle"
    shutil.copytree(out / "float32", copy)
    return copy


def edit_spec(bundle, change):
    spec = json.loads((bundle / BUNDLE_JSON).read_text())
    change(spec)
    (bundle / BUNDLE_JSON).write_text(json.dumps(spec))


# -- row 3: a file that does not belong to the bundle ------------------------------

def test_bundle_json_records_the_sha256_of_its_files(tiny_bundles):
    out, _ = tiny_bundles
    for recipe in ("float32", "int8"):
        spec = json.loads((out / recipe / BUNDLE_JSON).read_text())
        assert spec["format_version"] == BUNDLE_FORMAT_VERSION == 6
        assert spec["files"] == {
            name: hashlib.sha256((out / recipe / name).read_bytes()).hexdigest()
            for name in (TFLITE_FILE, SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE,
                         "source_vocab.txt", "target_vocab.txt", "bundle.txt")}
        assert spec["tokenizer"] == {"source": {"type": "char", "files": [SOURCE_TOKENIZER_FILE]},
                                     "target": {"type": "char", "files": [TARGET_TOKENIZER_FILE]}}


@pytest.mark.parametrize("name", [SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE])
def test_another_runs_tokenizer_is_refused(bundle_copy, name):
    """Same size, other ids: it used to decode to a plausible wrong date, exit 0."""
    tokenizer = CharTokenizer.load(bundle_copy / name)
    characters = list(tokenizer.vocabulary[4:])
    CharTokenizer(tokenizer.vocabulary[:4] + tuple(reversed(characters))).save(
        bundle_copy / name)
    with pytest.raises(BundleError, match=f"{name} is not the file") as raised:
        Bundle.load(bundle_copy)
    assert "SHA-256" in assert_one_line(raised.value)
    assert_one_error(decode(bundle_copy, "1 May 1990"), str(bundle_copy / name))


def test_the_two_sides_tokenizers_swapped_are_refused(bundle_copy):
    """Each file is a valid tokenizer, bundle.json lists both: only the sides differ."""
    def swap(spec):
        spec["tokenizer"]["source"], spec["tokenizer"]["target"] = (
            spec["tokenizer"]["target"], spec["tokenizer"]["source"])
    edit_spec(bundle_copy, swap)
    with pytest.raises(BundleError, match="tokens, but") as raised:
        Bundle.load(bundle_copy)
    assert_one_line(raised.value)


def test_a_format_3_bundle_is_refused_in_one_line(bundle_copy):
    """What export wrote before each side had its own tokenizer: one tokenizer.json."""
    def as_format_3(spec):
        spec["format_version"] = 3
        spec["tokenizer_file"] = "tokenizer.json"
        spec["tokenizer"] = {"type": "char", "files": ["tokenizer.json"]}
    edit_spec(bundle_copy, as_format_3)
    line = assert_one_error(decode(bundle_copy, "1 May 1990"))
    assert line == (f"error: {bundle_copy / BUNDLE_JSON}: the bundle has format version 3, "
                    "and this runtime reads version 6 only: export it again with this kit")


def test_another_recipes_model_is_refused(bundle_copy, tiny_bundles):
    """float16's file has float32's signatures, so only its checksum tells them apart."""
    out, _ = tiny_bundles
    shutil.copyfile(out / "float16" / TFLITE_FILE, bundle_copy / TFLITE_FILE)
    with pytest.raises(BundleError, match="model.tflite is not the file") as raised:
        Bundle.load(bundle_copy)
    assert_one_line(raised.value)
    assert_one_error(decode(bundle_copy, "1 May 1990"), "changed, damaged or copied")


@pytest.mark.parametrize("where", [0.0, 0.5, 0.9], ids=["root offset", "weights", "tail"])
def test_a_flipped_bit_never_reaches_the_interpreter(bundle_copy, monkeypatch, where):
    """A damaged file crashed tflite-runtime (segfault) or decoded wrongly: it is now
    refused by its checksum before any interpreter sees it."""
    import kit.runtime.bundle as bundle_module

    model = bytearray((bundle_copy / TFLITE_FILE).read_bytes())
    model[int(len(model) * where)] ^= 0x10
    (bundle_copy / TFLITE_FILE).write_bytes(bytes(model))

    def no_interpreter():
        raise AssertionError("a damaged file reached the interpreter")

    monkeypatch.setattr(bundle_module, "interpreter_class", no_interpreter)
    with pytest.raises(BundleError, match="model.tflite is not the file"):
        Bundle.load(bundle_copy)
    assert_one_error(decode(bundle_copy, "1 May 1990"), "model.tflite")


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 7, "6", None])
def test_other_format_versions_are_refused_naming_both(bundle_copy, version):
    edit_spec(bundle_copy, lambda spec: spec.update(format_version=version))
    with pytest.raises(BundleError) as raised:
        Bundle.load(bundle_copy)
    message = assert_one_line(raised.value)
    shown = {**{n: str(n) for n in (1, 2, 3, 4, 5, 7)}, "6": "'6'", None: "null"}[version]
    assert f"the bundle has format version {shown}" in message, message
    assert f"this runtime reads version {BUNDLE_FORMAT_VERSION}" in message, message


# -- the flat files (bundle.txt, the vocabularies), which apps read instead of bundle.json

def _rewrite(bundle, name, change):
    """Rewrites `bundle`/`name` with `change(text)`, and its checksum in bundle.json."""
    text = change((bundle / name).read_bytes().decode("utf-8"))
    (bundle / name).write_bytes(text.encode("utf-8"))
    edit_spec(bundle, _set("files", name, value=hashlib.sha256(text.encode()).hexdigest()))


def test_a_changed_bundle_txt_is_refused(bundle_copy):
    text = (bundle_copy / "bundle.txt").read_text()
    (bundle_copy / "bundle.txt").write_text(text.replace("\neos_id=3\n", "\neos_id=4\n"))
    with pytest.raises(BundleError, match="bundle.txt is not the file") as raised:
        Bundle.load(bundle_copy)
    assert "SHA-256" in assert_one_line(raised.value)
    assert_one_error(decode(bundle_copy, "1 May 1990"), str(bundle_copy / "bundle.txt"))


@pytest.mark.parametrize("change, fragment", [
    (lambda text: text.replace("\neos_id=3\n", "\neos_id=4\n"),
     "entry 10 is 'eos_id=4', expected 'eos_id=3'"),
    (lambda text: text.replace("\nencode=encode\n", "\n"),
     "entry 20 is 'decode_step=decode_step', expected 'encode=encode'"),
    (lambda text: text + "extra=1\n", "is 'extra=1', expected no more entries"),
    (lambda text: text.replace("\n", "\r\n"), "carriage return"),
    (lambda text: text + "no equals sign\n", "neither key=value nor a # comment"),
], ids=["value", "key missing", "key added", "CRLF", "not key=value"])
def test_a_bundle_txt_that_disagrees_with_bundle_json_is_refused(bundle_copy, change,
                                                                 fragment):
    """Its checksum recorded anew too: what an app reads is what bundle.json says."""
    _rewrite(bundle_copy, "bundle.txt", change)
    with pytest.raises(BundleError) as raised:
        Bundle.load(bundle_copy)
    message = assert_one_line(raised.value)
    assert fragment in message and str(bundle_copy / "bundle.txt") in message, message


def test_a_missing_vocabulary_file_is_refused(bundle_copy):
    (bundle_copy / "target_vocab.txt").unlink()
    with pytest.raises(BundleError, match="is missing target_vocab.txt") as raised:
        Bundle.load(bundle_copy)
    assert_one_line(raised.value)
    assert_one_error(decode(bundle_copy, "1 May 1990"), "missing target_vocab.txt")


def test_a_vocabulary_file_that_is_not_the_tokenizers_is_refused(bundle_copy):
    def swap_two(text):
        lines = text.split("\n")
        lines[4], lines[5] = lines[5], lines[4]
        return "\n".join(lines)

    _rewrite(bundle_copy, "source_vocab.txt", swap_two)
    with pytest.raises(BundleError, match="source_vocab.txt is not the vocabulary of the "
                                          "source tokenizer source_tokenizer.json") as raised:
        Bundle.load(bundle_copy)
    assert_one_line(raised.value)


# -- row 4: bundle.json values used unchecked ---------------------------------------

def _delete(*keys):
    def change(spec):
        for key in keys[:-1]:
            spec = spec[key]
        del spec[keys[-1]]
    return change


def _set(*keys, value):
    def change(spec):
        for key in keys[:-1]:
            spec = spec[key]
        spec[keys[-1]] = value
    return change


ROW_4 = {
    "missing nested key": (_delete("signatures", "decode_step", "inputs", "self_key_0"),
                           "signatures.decode_step.inputs must name"),
    "missing special id": (_delete("special_ids", "eos"), "special_ids lacks eos"),
    "missing vocab size": (_delete("vocab_size", "target"), "vocab_size lacks target"),
    "missing top key": (_delete("signatures"), "lacks signatures"),
    "missing tokenizer": (_delete("tokenizer"), "lacks tokenizer"),
    "source_length string": (_set("source_length", value="48"),
                             "source_length must be an integer from 1 to"),
    "source_length 0": (_set("source_length", value=0), "Received: 0"),
    "source_length 1e12": (_set("source_length", value=1e12), "Received: 1000000000000.0"),
    "source_length 10**12": (_set("source_length", value=10**12), "Received: 1000000000000"),
    "source_length not S": (_set("source_length", value=48),
                            "variants lacks the batch 1, source_length S=48 variant"),
    "variants not a list": (_set("variants", value={}), "variants must be a list"),
    "variant batch 0": (_set("variants", 0, "batch", value=0),
                        "variants[0].batch must be an integer from 1"),
    "variant longer than S": (_set("variants", 1, "source_length", value=45),
                              "variants[1].source_length must be an integer from 1 to 44"),
    "variant repeated": (_set("variants", 1, "batch", value=1),
                         "variants[1] repeats batch 1, source_length 44"),
    "variant signature missing": (_set("variants", 1, "encode", value="encode_b1_s99"),
                                  "signatures lacks encode_b1_s99"),
    "variant shape": (_set("signatures", "decode_step_b32_s44", "inputs", "token_ids", "shape",
                           value=[1, 1]), "expected (B=32, 1)"),
    "target_length 1e9": (_set("target_length", value=1e9), "target_length must be"),
    "target_length not T": (_set("target_length", value=16), "T=16"),
    "bos 999": (_set("special_ids", "bos", value=999), "special_ids.bos must be"),
    "bos not the tokenizer's": (_set("special_ids", "bos", value=7),
                                "special_ids.bos is 7, but"),
    "eos -1": (_set("special_ids", "eos", value=-1), "special_ids.eos must be"),
    "special ids clash": (_set("special_ids", "eos", value=2), "four different ids"),
    "bool as a number": (_set("target_length", value=True), "Received: true"),
    "vocab not V": (_set("vocab_size", "target", value=65), "V=65"),
    "tokenizer size": (_set("vocab_size", "target_tokenizer", value=70), "tokens, but"),
    "tokenizer side missing": (_delete("tokenizer", "target"), "tokenizer lacks target"),
    "tokenizer files shared": (_set("tokenizer", "target", "files",
                                    value=[SOURCE_TOKENIZER_FILE]), "tokenizer.target.files"),
    "cache shape": (_set("signatures", "decode_step", "inputs", "self_key_0", "shape",
                         value=[1, 1, 2, 16]), "self_key_0 has shape"),
    "negative dim": (_set("signatures", "encode", "inputs", "source_ids", "shape",
                          value=[1, -44]), "positive integers"),
    "dtype": (_set("signatures", "decode_step", "outputs", "logits", "dtype",
                   value="float16"), "logits must be float32"),
    "model outside the bundle": (_set("model_file", value="../float16/model.tflite"),
                                 "model_file must be a file name"),
    "no checksums": (_delete("files"), "lacks files"),
    "bad checksum": (_set("files", TFLITE_FILE, value="00" * 31), "64 hex digits"),
    "extra key": (_set("sourcelength", value=44), "unknown keys 'sourcelength'"),
    "no flat": (_delete("flat"), "lacks flat"),
    "flat extra key": (_set("flat", "extra", value=1), "flat has unknown keys 'extra'"),
    "flat no vocabulary for a char side": (
        _set("flat", "vocabulary", "source", value=None),
        "flat.vocabulary.source must be a file name for a char or word tokenizer"),
    "flat names bundle.json": (_set("flat", "metadata", value=BUNDLE_JSON),
                               "flat must name distinct file names"),
    "flat names a tokenizer file": (_set("flat", "vocabulary", "target",
                                         value=TARGET_TOKENIZER_FILE), "flat must name"),
    "flat outside the bundle": (_set("flat", "metadata", value="../bundle.txt"),
                                "flat must name"),
    "flat name of two lines": (_set("flat", "metadata", value="bundle\ntxt"),
                               "flat must name"),
    "no checksum of bundle.txt": (_delete("files", "bundle.txt"), "files lacks bundle.txt"),
    "notes not an object": (_set("decoding", value="greedy"), "decoding must be an object"),
}


@pytest.mark.parametrize("case", ROW_4)
def test_bundle_json_is_checked_at_load(bundle_copy, case):
    change, fragment = ROW_4[case]
    edit_spec(bundle_copy, change)
    with pytest.raises(BundleError) as raised:
        Bundle.load(bundle_copy)
    message = assert_one_line(raised.value)
    assert fragment in message and str(bundle_copy) in message, message


@pytest.mark.parametrize("content, fragment", [
    (b"[1, 2]", "holds a JSON list"),
    (b"{\"format_version\": 2", "is damaged"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "is damaged"),
    (b'{"format_version": 2, "source_length": 1' + b"0" * 5000 + b"}", "is damaged"),
    (b"", "is damaged"),
], ids=["list", "cut", "not UTF-8", "deep nesting", "5000-digit integer", "empty"])
def test_damaged_bundle_json_is_one_line(bundle_copy, content, fragment):
    (bundle_copy / BUNDLE_JSON).write_bytes(content)
    with pytest.raises(BundleError, match=fragment) as raised:
        Bundle.load(bundle_copy)
    assert_one_line(raised.value)


@pytest.mark.parametrize("name", [BUNDLE_JSON, TFLITE_FILE, SOURCE_TOKENIZER_FILE])
@pytest.mark.parametrize("kind", ["fifo", "endless device", "directory"])
def test_a_file_that_is_not_a_regular_file_is_refused_not_read(bundle_copy, name, kind):
    """Reading a FIFO blocks for ever, reading /dev/zero never ends."""
    (bundle_copy / name).unlink()
    if kind == "fifo":
        os.mkfifo(bundle_copy / name)
    elif kind == "directory":
        (bundle_copy / name).mkdir()
    else:
        (bundle_copy / name).symlink_to("/dev/zero")
    assert_one_error(decode(bundle_copy, "1 May 1990"), str(bundle_copy / name))


def test_a_huge_bundle_json_is_refused_unread(bundle_copy):
    with open(bundle_copy / BUNDLE_JSON, "ab") as handle:
        handle.truncate(64 << 20)  # sparse: no disk used
    with pytest.raises(BundleError, match="larger than 4 MB"):
        Bundle.load(bundle_copy)


def test_a_longer_target_with_a_wrong_eos_is_refused_not_a_hang(bundle_copy):
    """The reproduction: target_length past the model's cache slots and an EOS the
    model never produces made the loop run past the cache."""
    edit_spec(bundle_copy, lambda spec: spec.update(target_length=10**6))
    edit_spec(bundle_copy, _set("special_ids", "eos", value=10))
    assert_one_error(decode(bundle_copy, "1 May 1990"), "T=1000000")


def test_decoding_never_passes_the_last_cache_slot(tiny_bundles):
    """Even if a bundle's T got past the checks, the step refuses position T."""
    out, _ = tiny_bundles
    for mode in MODES:
        bundle = Bundle.load(out / "float32", mode=mode)
        T = bundle.target_length
        fed = [bundle.bos_id] + [5] * (T - 1)
        assert bundle.step_logits(bundle.source_ids("1 May 1990"), fed).shape[0] == T
        bundle.target_length, bundle.eos_id = 4 * T, -1  # a lying bundle.json, no EOS
        with pytest.raises(ValueError, match=f"position must lie in \\[0, {T}\\)"):
            bundle.greedy_ids(bundle.source_ids("1 May 1990"))


# -- row 8: crashes in the interpreter ----------------------------------------------

@pytest.mark.parametrize("threads, code", [("100000", 1), ("0", 1), ("-1", 1), ("two", 2),
                                           ("1e3", 2)])
def test_threads_are_bounded_before_any_work(tiny_bundles, threads, code):
    out, _ = tiny_bundles
    result = decode(out / "float32", "--threads", threads, "1 May 1990")
    assert_one_error(result, "--threads", code=code)
    assert result.stdout == b""


def test_bundle_load_bounds_num_threads(tiny_bundles):
    out, _ = tiny_bundles
    for bad in (0, 100_000, 2.0, True):
        with pytest.raises(ValueError, match="num_threads"):
            Bundle.load(out / "float32", num_threads=bad)
    assert Bundle.load(out / "float32", num_threads=1).translate("1 May 1990")


# -- row 9: one bad byte must not end the stream ------------------------------------

def test_a_line_that_is_not_utf8_costs_only_that_line(tiny_bundles):
    out, _ = tiny_bundles
    result = decode(out / "float32", stdin=b"1 May 1990\n\xff\n2 Jun 2001\r\n")
    outputs = result.stdout.decode().split("\n")
    assert len(outputs) == 4 and outputs[3] == "", outputs  # three lines, each ended
    assert outputs[1] == "" and outputs[0] and outputs[2]
    assert_one_error(result, "line 2", "not UTF-8")
    expected = Bundle.load(out / "float32")
    assert outputs[0] == expected.translate("1 May 1990")
    assert outputs[2] == expected.translate("2 Jun 2001")


def test_an_argument_that_is_not_utf8_costs_only_that_argument(tiny_bundles):
    out, _ = tiny_bundles
    result = decode(out / "float32", "1 May 1990", b"\xff\xfe", "2 Jun 2001")
    outputs = result.stdout.decode().split("\n")
    assert len(outputs) == 4 and outputs[1] == "" and outputs[0] and outputs[2]
    assert_one_error(result, "argument 2", "not UTF-8")


def test_help_says_how_outputs_stay_aligned(tiny_bundles):
    result = decode("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.decode().split())
    assert "exactly one output line" in text and "empty line" in text and "--strict" in text


# -- row 10: output errors ------------------------------------------------------------

def test_a_full_disk_is_one_error_line(tiny_bundles):
    out, _ = tiny_bundles
    with open("/dev/full", "wb") as full:
        result = decode(out / "float32", "1 May 1990", stdout=full)
    assert_one_error(result, "cannot write the output", "No space left on device")


def test_a_closed_pipe_is_a_quiet_exit(tiny_bundles):
    out, _ = tiny_bundles
    lines = b"".join(b"%d May 1990\n" % (1 + i % 28) for i in range(400))
    process = subprocess.Popen([sys.executable, "-m", "kit", "decode", str(out / "float32")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO, env=ENV)
    try:
        process.stdin.write(lines)
        process.stdin.close()
        assert process.stdout.readline()  # like `| head -1`
        process.stdout.close()
        process.wait(timeout=TIMEOUT)
        errors = process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0 and errors == ""


# -- row 11: confident nonsense ---------------------------------------------------------

def test_empty_and_blank_inputs_give_empty_lines_without_running_the_model(tiny_bundles):
    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")

    def no_model(*args):
        raise AssertionError("the model ran on an empty input")

    bundle.steps.start = no_model
    assert bundle.translate("") == "" and bundle.translate(" \t ") == ""
    result = decode(out / "float32", stdin=b"\n   \n1 May 1990\n\t\n")
    assert result.returncode == 0 and stderr_lines(result) == []
    outputs = result.stdout.decode().split("\n")
    assert outputs[:2] == ["", ""] and outputs[2] and outputs[3:] == ["", ""]


def test_unseen_characters_are_counted_in_a_warning(tiny_bundles):
    out, _ = tiny_bundles
    result = decode(out / "float32", "1 May 1990", "☃☃ 1 May 1990 \x07")
    assert result.returncode == 0 and len(result.stdout.decode().split("\n")) == 3
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("warning: argument 2: 3 characters")
    assert "'☃'" in lines[0] and "'\\x07'" in lines[0]


def test_strict_refuses_unseen_characters_and_long_sources(tiny_bundles):
    out, _ = tiny_bundles
    long = "1 May 1990" + " 1" * 30
    stdin = f"1 May 1990\n☃ 1 May 1990\n{long}\n".encode()
    relaxed = decode(out / "float32", stdin=stdin)
    assert relaxed.returncode == 0
    warnings = stderr_lines(relaxed)
    assert [line.split(":")[1] for line in warnings] == [" standard input line 2",
                                                          " standard input line 3"]
    assert "the rest is cut" in warnings[1] and "70 tokens long" in warnings[1]
    strict = decode(out / "float32", "--strict", stdin=stdin)
    outputs = strict.stdout.decode().split("\n")
    assert outputs[0] and outputs[1:] == ["", "", ""], outputs
    assert strict.returncode == 1
    errors = stderr_lines(strict)
    assert len(errors) == 2 and all(line.startswith("error:") and "--strict" in line
                                    for line in errors)


def test_the_readme_example_still_works(tiny_bundles):
    out, _ = tiny_bundles
    texts = ["Sun 29 Nov 2026", "3rd of march 1999"]
    result = decode(out / "float32", *texts)
    bundle = Bundle.load(out / "float32")
    assert result.stdout.decode().splitlines() == [bundle.translate(t) for t in texts]
    assert result.returncode == 0


# -- row 7: files readable by other users ---------------------------------------------

# Root ignores file modes, so the loader also runs under an audit hook that fails any
# attempt to open a bundle file for writing or to change the directory.
_READ_ONLY_PROBE = textwrap.dedent("""
    import os, sys
    bundle = os.path.realpath(sys.argv[1])
    MUTATING = {"os.remove", "os.rename", "os.mkdir", "os.chmod", "os.chown", "os.link",
                "os.symlink", "os.rmdir", "os.truncate", "os.utime", "shutil.rmtree"}
    def inside(path):
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(bundle)
        except (TypeError, ValueError):
            return False
    def hook(event, args):
        if event == "open" and args and inside(args[0]):
            mode, flags = args[1], args[2]
            if (mode and any(c in str(mode) for c in "wax+")) or (
                    flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                raise PermissionError(f"wrote {args[0]}")
        elif event in MUTATING and args and inside(args[0]):
            raise PermissionError(f"{event} {args[0]}")
    sys.addaudithook(hook)
    from kit.runtime import Bundle
    print(Bundle.load(bundle).translate("1 May 1990"))
""")


def test_a_read_only_bundle_loads_and_decodes(bundle_copy):
    files = [path for path in bundle_copy.iterdir()]
    for path in files:
        path.chmod(0o444)
    bundle_copy.chmod(0o555)
    try:
        assert stat.S_IMODE(bundle_copy.stat().st_mode) == 0o555
        probe = subprocess.run([sys.executable, "-c", _READ_ONLY_PROBE, str(bundle_copy)],
                               capture_output=True, cwd=REPO, env=ENV, timeout=TIMEOUT)
        assert probe.returncode == 0, probe.stderr.decode()[-2000:]
        assert probe.stdout.strip()
        result = decode(bundle_copy, "1 May 1990")
        assert result.returncode == 0 and result.stdout.strip() == probe.stdout.strip()
    finally:
        bundle_copy.chmod(0o755)
        for path in files:
            path.chmod(0o644)


def test_a_file_the_compiled_api_cannot_run_falls_back_to_the_interpreter(tiny_bundles,
                                                                           monkeypatch):
    """A crafted file that CompiledModel loads but cannot run (outputs it cannot bind)
    raised a traceback mid-decode: load now probes it and falls back."""
    from kit.runtime import Bundle, BundleError
    from kit.runtime.steps import CompiledSteps

    path = tiny_bundles[0] / "float32"
    expected = Bundle.load(path, mode="direct").translate("1 May 1990")

    def cannot_run(self, *args):
        raise RuntimeError("Failed to run: shared constant output\nmore detail")

    monkeypatch.setattr(CompiledSteps, "step", cannot_run)
    loaded = Bundle.load(path)
    assert loaded.mode == "direct" and loaded.translate("1 May 1990") == expected
    assert loaded.fallback_reason == ("compiled: CompiledModel cannot run this file: "
                                      "Failed to run: shared constant output")
    with pytest.raises(BundleError, match="cannot run this file"):
        Bundle.load(path, mode="compiled")
