"""The C decode loop (examples/c) decodes the bundles as the Python runtime does.

The program links the libLiteRt.so inside the ai-edge-litert wheel. Environment variable
(set by .ci/run in the runtime environment):
    KIT_C_DECODERS: built kit_decode programs, separated by os.pathsep (.ci/run passes a
        gcc -Werror build and an AddressSanitizer build). Unset, the program is built
        here with CMake, where CMake, a C compiler and ai-edge-litert are installed, and
        the tests are skipped, saying why, where they are not (tflite-runtime has no
        libLiteRt.so).
    KIT_C_SENTENCEPIECE: "1" when the programs must read SentencePiece sides (.ci/run
        installs libsentencepiece-dev and sets it); unset, a program built without the
        library skips those tests, saying why.
"""

import hashlib
import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.runtime import Bundle
from kit.runtime.flat_files import vocabulary_text
from kit.tokenizers import source_ids
from kit.tokenizers.word import WordTokenizer
from tests.device.make_bundles import BUNDLES, RECIPES, SENTENCEPIECE

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "c"


@pytest.fixture(scope="session")
def c_decoders(tmp_path_factory):
    """The kit_decode programs to test: KIT_C_DECODERS's, or one built here."""
    return c_decoder_programs(tmp_path_factory)


def c_decoder_programs(tmp_path_factory):
    """KIT_C_DECODERS's programs, or one built under `tmp_path_factory`; skips where it
    cannot be built."""
    given = os.environ.get("KIT_C_DECODERS")
    if given:
        programs = [Path(p) for p in given.split(os.pathsep) if p]
        missing = [str(p) for p in programs if not p.is_file()]
        if not programs or missing:
            pytest.fail(f"KIT_C_DECODERS names no program or missing ones: {missing}")
        return programs
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("the C loop links ai-edge-litert's libLiteRt.so, not installed here")
    if shutil.which("cmake") is None or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("building the C loop needs CMake and a C compiler")
    build = tmp_path_factory.mktemp("c-build")
    for command in (["cmake", "-S", str(EXAMPLE), "-B", str(build), "-DKIT_WERROR=ON",
                     f"-DKIT_PYTHON={sys.executable}"],
                    ["cmake", "--build", str(build)]):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return [build / "kit_decode"]


def _run(program, bundle, sources, *options):
    """(return code, output lines, stderr) of `program` over `sources`, one thread."""
    done = subprocess.run([str(program), "--escaped", "--threads", "1", *options,
                           str(bundle)],
                          # --escaped: one line each, escaped as vocabulary files are
                          input=vocabulary_text(sources).encode("utf-8"),
                          capture_output=True, timeout=600)
    return (done.returncode, done.stdout.decode("utf-8").split("\n")[:-1],
            done.stderr.decode("utf-8", "replace"))


def _ids(lines):
    return [[int(t) for t in line.split()] for line in lines]


WITHOUT_SENTENCEPIECE = "built without the SentencePiece library"


def check_tokenizers_like_python(programs, bundle, bundle_dir, sources, seed=0):
    """`kit_decode --tokenize` gives the Python runtime's source ids of `sources`, and
    `--detokenize` its text of random id sequences (specials, ids past the tokenizer's
    vocabulary and all), on the loaded `bundle` from `bundle_dir`: the tokenizers
    alone, which a barely trained model's outputs may not reveal."""
    rng = random.Random(seed)
    size = bundle.target_tokenizer.vocab_size
    sequences = [[1], [5, 1, 6], [0, 2, 7, 3, 8], [3], [], [size, size + 2, 4]]
    sequences += [[rng.randrange(size + 3) for _ in range(rng.randint(0, 24))]
                  for _ in range(300)]
    texts = [bundle.text_of(ids) for ids in sequences]
    kept = [(ids, text) for ids, text in zip(sequences, texts)
            if "\n" not in text and "\r" not in text]  # one output line each
    for program in programs:
        status, lines, errors = _run(program, bundle_dir, sources, "--tokenize")
        assert status == 0, errors
        wanted = [bundle.source_ids(s) for s in sources]
        differ = [(s, a, b) for s, a, b in zip(sources, _ids(lines), wanted) if a != b][:3]
        assert len(lines) == len(sources) and not differ, f"{program}: {differ}"
        status, lines, errors = _run(program, bundle_dir,
                                     [" ".join(map(str, ids)) for ids, _ in kept],
                                     "--detokenize")
        assert status == 0, errors
        assert lines == [text for _, text in kept], program


def check_like_python(programs, bundle_dir, sources):
    """Each program's ids and texts for `sources` are the Python runtime's, on the
    bundle at `bundle_dir`; skips (or fails, where KIT_C_SENTENCEPIECE=1) for a program
    built without SentencePiece given a SentencePiece bundle. Returns how many sources
    agreed (all of them)."""
    bundle = Bundle.load(bundle_dir)
    for program in programs:
        status, _, errors = _run(program, bundle_dir, [], "--tokenize")
        if WITHOUT_SENTENCEPIECE in errors:
            if os.environ.get("KIT_C_SENTENCEPIECE") == "1":
                pytest.fail(f"KIT_C_SENTENCEPIECE=1, and {program}: {errors.strip()}")
            pytest.skip(f"{program} was {WITHOUT_SENTENCEPIECE} (libsentencepiece-dev)")
    check_tokenizers_like_python(programs, bundle, bundle_dir, sources)
    wanted_ids = [[int(t) for t in bundle.greedy_ids(bundle.source_ids(s))] for s in sources]
    wanted_texts = [bundle.translate(s) for s in sources]
    for program in programs:
        status, lines, errors = _run(program, bundle_dir, sources, "--ids")
        assert status == 0, errors
        found = _ids(lines)
        differ = [(s, a, b) for s, a, b in zip(sources, found, wanted_ids) if a != b][:3]
        assert len(found) == len(sources) and not differ, f"{program}: {differ}"
        status, lines, errors = _run(program, bundle_dir, sources)
        assert status == 0, errors
        differ = [(s, a, b) for s, a, b in zip(sources, lines, wanted_texts) if a != b][:3]
        assert len(lines) == len(sources) and not differ, f"{program}: {differ}"
    return len(sources)


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_c_loop_gives_the_python_runtimes_ids(recipe, c_decoders, device_dir, expected,
                                                  decoded, record):
    """Every recipe, int8 included: the same library runs the same kernels, so the ids
    are identical on all 200 inputs (the 64 held-out samples and 136 unusual ones)."""
    sources = expected["sources"]
    mine = decoded(recipe)["ids"]
    for program in c_decoders:
        status, lines, errors = _run(program, device_dir / BUNDLES / recipe, sources, "--ids")
        assert status == 0, errors
        found = _ids(lines)
        assert len(found) == len(sources), errors
        agree = sum(a == b for a, b in zip(found, mine))
        record[recipe][f"c_agree_{program.parent.name}"] = agree
        differ = [(s, a, b) for s, a, b in zip(sources, found, mine) if a != b][:3]
        assert agree == len(sources), f"{program}: {agree}/{len(sources)}; {differ}"


def test_the_c_loop_writes_the_texts_the_decode_command_writes(c_decoders, device_dir,
                                                               expected, decoded):
    """Text output: the target tokenizer's decode of the ids; a blank input gives a
    blank line, as `python -m kit decode` answers it."""
    sources = expected["sources"]
    bundle = Bundle.load(device_dir / BUNDLES / "float32")
    wanted = ["" if not s.strip() else bundle.text_of(ids)
              for s, ids in zip(sources, decoded("float32")["ids"])]
    for program in c_decoders:
        status, lines, errors = _run(program, device_dir / BUNDLES / "float32", sources)
        assert status == 0, errors
        assert lines == wanted
        assert "INFO" not in errors  # LiteRT's log lines are silenced without --verbose


def test_a_sentencepiece_bundle_gives_the_python_runtimes_ids_and_texts(
        c_decoders, device_dir, expected, record):
    """A run with SentencePiece on both sides, trained on JupyterLab's French messages
    (tests/device/make_bundles.py): the C loop tokenizes through the SentencePiece C++
    library (Debian's libsentencepiece-dev) and decodes, float32 and dynamic_int8, as
    the Python runtime does through the sentencepiece wheel. The main suite's device
    bundles have no such run; tests/training/test_own_data.py checks the C loop on its
    own SentencePiece bundle there."""
    if SENTENCEPIECE not in expected:
        pytest.skip("no SentencePiece run among these bundles (make_bundles makes one); "
                    "the main suite checks this in tests/training/test_own_data.py")
    made = expected[SENTENCEPIECE]
    for recipe in made["recipes"]:
        agree = check_like_python(c_decoders, device_dir / SENTENCEPIECE / recipe,
                                  made["sources"])
        record[recipe]["c_sentencepiece_agree"] = f"{agree}/{len(made['sources'])}"


def test_the_char_tokenizers_give_the_python_runtimes_ids_and_texts(c_decoders, device_dir,
                                                                    expected):
    """--tokenize and --detokenize on the float32 bundle's char tokenizers."""
    bundle_dir = device_dir / BUNDLES / "float32"
    check_tokenizers_like_python(c_decoders, Bundle.load(bundle_dir), bundle_dir,
                                 expected["sources"])


def test_a_word_tokenizer_splits_as_python_does(c_decoders, device_dir, tmp_path):
    """The word tokenizer's C split agrees with Python's str.split() on every kind of
    whitespace: a copy of the float32 bundle given a word vocabulary for its source side
    decodes what the Python runtime decodes from Python's ids."""
    original = device_dir / BUNDLES / "float32"
    copy = tmp_path / "word"
    shutil.copytree(original, copy)
    bundle = Bundle.load(original)
    words = ["K", "AE1", "T", "D", "AO1", "G", "\u00e9t\u00e9", "x\\y"]
    tokenizer = WordTokenizer(["<pad>", "<unk>", "<s>", "</s>", *words])
    (copy / "source_vocab.txt").write_text(vocabulary_text(tokenizer.vocabulary),
                                           encoding="utf-8")
    metadata = (copy / "bundle.txt").read_text(encoding="utf-8").splitlines()
    changed = {"source_tokenizer": "word", "source_tokenizer_size": str(tokenizer.vocab_size),
               "sha256.source_vocab.txt": _sha256(copy / "source_vocab.txt")}
    (copy / "bundle.txt").write_text(
        "".join((f"{line.split('=')[0]}={changed[line.split('=')[0]]}"
                 if line.split("=")[0] in changed else line) + "\n" for line in metadata),
        encoding="utf-8")
    spaces = "\t\x0b\x0c\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029" \
             "\u202f\u205f\u3000"
    sources = ["K AE1 T", "  D\tAO1  G  ", "K\u200bAE1", "\u00e9t\u00e9 x\\y Z",
               *(f"K{space}AE1{space}{space}T" for space in spaces),
               "T " * (bundle.source_length + 3)]
    wanted = [bundle.greedy_ids(source_ids(tokenizer, s, bundle.source_length))
              for s in sources]
    for program in c_decoders:
        status, lines, errors = _run(program, copy, sources, "--ids")
        assert status == 0, errors
        assert _ids(lines) == [[int(t) for t in ids] for ids in wanted]
        assert "line 3: 1 word the model never saw" in errors  # "K\u200bAE1": one word


def _refusal(program, bundle, *options, stdin=b"x\n"):
    done = subprocess.run([str(program), *options, str(bundle)], input=stdin,
                          capture_output=True, timeout=120)
    return done.returncode, done.stderr.decode("utf-8", "replace").strip().splitlines()


def _damaged(device_dir, tmp_path, damage):
    copy = tmp_path / "damaged"
    shutil.copytree(device_dir / BUNDLES / "float32", copy)
    damage(copy)
    return copy


def _replace_line(key, value):
    def damage(copy):
        lines = (copy / "bundle.txt").read_text(encoding="utf-8").splitlines()
        (copy / "bundle.txt").write_text(
            "".join(f"{key}={value}\n" if line.startswith(f"{key}=") else line + "\n"
                    for line in lines), encoding="utf-8")
    return damage


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rehashed(name, damage):
    """`damage`, then bundle.txt records the damaged `name`'s SHA-256: what is refused is
    the damage, by the check after the SHA-256 one."""
    def both(copy):
        damage(copy)
        _replace_line(f"sha256.{name}", _sha256(copy / name))(copy)
    return both


@pytest.mark.parametrize("damage, says", [
    (lambda copy: (copy / "bundle.txt").unlink(), "has no bundle.txt"),
    (_replace_line("format_version", "5"), "format version 5"),
    (_replace_line("source_length", "many"), "source_length must be an integer"),
    (_replace_line("model_file", "../model.tflite"), "must be a file name"),
    (_replace_line("source_tokenizer", "bpe"), "char, word and sentencepiece tokenizers only"),
    (_replace_line("source_length", "45"), "not the model it describes"),
    (_replace_line("decode_step", "decode"), "has no signature decode"),
    (_rehashed("target_vocab.txt", lambda copy: (copy / "target_vocab.txt").write_text(
        "<pad>\n", encoding="utf-8")), "must hold"),
    (_rehashed("model.tflite", lambda copy: (copy / "model.tflite").write_bytes(
        b"not a model")), "loading"),
])
def test_a_damaged_bundle_is_refused_in_one_line(damage, says, c_decoders, device_dir,
                                                 tmp_path):
    bundle = _damaged(device_dir, tmp_path, damage)
    for program in c_decoders:
        status, lines = _refusal(program, bundle)
        assert status == 1 and len(lines) == 1, lines
        assert lines[0].startswith("kit_decode: error: ") and says in lines[0], lines


@pytest.mark.parametrize("options", [(), ("--threads", "0"), ("--frobnicate",),
                                     ("--max-new-tokens", "1000")])
def test_bad_usage_exits_2(options, c_decoders, device_dir):
    for program in c_decoders:
        arguments = options if options == () else (*options, device_dir / BUNDLES / "float32")
        done = subprocess.run([str(program), *map(str, arguments)], input=b"",
                              capture_output=True, timeout=120)
        assert done.returncode == 2
        assert done.stderr.decode().startswith("usage: kit_decode")


def test_a_bad_line_costs_its_own_line(c_decoders, device_dir):
    """Bytes that are not UTF-8 give a blank line, an error naming the line, and exit
    status 1 after every other line was decoded."""
    for program in c_decoders:
        done = subprocess.run([str(program), str(device_dir / BUNDLES / "float32")],
                              input=b"1984.11.30\n\xff\xfe\n6/8/1964\n", capture_output=True,
                              timeout=120)
        lines = done.stdout.decode().split("\n")
        assert done.returncode == 1 and len(lines) == 4 and lines[1] == "" and lines[0]
        assert "line 2 is not UTF-8 text (byte 0xff at offset 0)" in done.stderr.decode()

