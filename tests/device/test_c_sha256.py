"""The C example's SHA-256 (examples/c/kit_sha256.c) gives Python's hashlib digests.

kit_sha256sum is built beside each kit_decode of the `c_decoders` fixture (the same
CMake build, with the same warnings and sanitizers): see tests/device/test_c_loop.py.
"""

import hashlib
import random
import subprocess

import pytest

import tests.device.test_c_loop as c_loop

c_decoders = c_loop.c_decoders  # the fixture: the kit_decode programs to test

# The padding's edges (55 bytes pad into one block, 56 into two), a block and around,
# kit_sha256_file's 64 KiB chunk and around, and about 1 MB.
LENGTHS = (0, 1, 55, 56, 57, 63, 64, 65, 127, 128, 129, 65535, 65536, 65537, 1_000_003)


def _sha256sums(decoders):
    programs = [program.parent / "kit_sha256sum" for program in decoders]
    missing = [str(p) for p in programs if not p.is_file()]
    if missing:
        pytest.fail(f"no kit_sha256sum beside kit_decode (the same CMake build makes "
                    f"both): {missing}")
    return programs


def _sanitized(program):
    """Whether `program`'s CMake build has KIT_SANITIZE set (read from its cache)."""
    cache = program.parent / "CMakeCache.txt"
    return cache.is_file() and any(
        line.startswith("KIT_SANITIZE:") and line.split("=", 1)[1].strip()
        for line in cache.read_text(encoding="utf-8", errors="replace").splitlines())


def _digests(program, paths, *options):
    done = subprocess.run([str(program), *options, *map(str, paths)], capture_output=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done.stdout.decode("utf-8").splitlines()


@pytest.mark.parametrize("options", [(), ("--pieces",)])
def test_sha256_is_hashlibs_at_every_padding_edge(options, c_decoders, tmp_path):
    """Random bytes of each length; --pieces feeds them to kit_sha256_update in pieces of
    1 to 130 bytes, so that pieces end everywhere in a block."""
    paths = []
    for length in LENGTHS:
        paths.append(tmp_path / f"{length}.bin")
        paths[-1].write_bytes(random.Random(length).randbytes(length))
    wanted = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p}" for p in paths]
    for program in _sha256sums(c_decoders):
        assert _digests(program, paths, *options) == wanted, program


def test_sha256_of_2_to_the_32_bits_and_more(c_decoders, tmp_path):
    """The length in bits does not fit 32 bits: 512 MiB and 3 bytes, sparse on disk.
    Skipped for a sanitizer build (about ten times slower there, and the length's
    arithmetic is the same for every length)."""
    path = tmp_path / "large.bin"
    zeros, tail = 1 << 29, b"\x01\x02\x03"
    with path.open("wb") as file:
        file.seek(zeros)
        file.write(tail)
    expected = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(zeros >> 20):
        expected.update(block)
    expected.update(tail)
    programs = [p for p in _sha256sums(c_decoders) if not _sanitized(p)]
    if not programs:
        pytest.skip("only sanitizer builds to test")
    for program in programs:
        assert _digests(program, [path]) == [f"{expected.hexdigest()}  {path}"], program


def _flip_a_byte(name):
    def damage(copy):
        content = bytearray((copy / name).read_bytes())
        content[len(content) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(content))
    return damage


def _without_lines(prefix):
    def damage(copy):
        lines = (copy / "bundle.txt").read_text(encoding="utf-8").splitlines()
        (copy / "bundle.txt").write_text(
            "".join(line + "\n" for line in lines if not line.startswith(prefix)),
            encoding="utf-8")
    return damage


def _with_line(line):
    def damage(copy):
        text = (copy / "bundle.txt").read_text(encoding="utf-8")
        (copy / "bundle.txt").write_text(f"{text}{line}\n", encoding="utf-8")
    return damage


def _vocabulary_swapped(copy):  # the same tokens, two of them swapped: a wrong model
    lines = (copy / "target_vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[4], lines[5] = lines[5], lines[4]
    (copy / "target_vocab.txt").write_text("\n".join(lines), encoding="utf-8")


_DIFFERS = "is not the file bundle.txt records (SHA-256 "


@pytest.mark.parametrize("damage, says", [
    (_flip_a_byte("model.tflite"), f"/model.tflite {_DIFFERS}"),
    (_vocabulary_swapped, f"/target_vocab.txt {_DIFFERS}"),
    # A file the C loop does not read, but bundle.txt records: refused as the Python
    # runtime refuses it.
    (_flip_a_byte("source_tokenizer.json"), f"/source_tokenizer.json {_DIFFERS}"),
    (lambda copy: (copy / "source_vocab.txt").unlink(),
     "has no source_vocab.txt, whose SHA-256 bundle.txt records"),
    (_without_lines("sha256.model.tflite="), "bundle.txt has no sha256.model.tflite"),
    (_without_lines("sha256."), "bundle.txt has no sha256.model.tflite"),
    (_without_lines("sha256.target_vocab.txt="), "bundle.txt has no sha256.target_vocab.txt"),
    (c_loop._replace_line("sha256.model.tflite", "2C3DF750" * 8),
     "sha256.model.tflite must be a SHA-256, 64 lowercase hex digits. Received: 2C3DF750"),
    (c_loop._replace_line("sha256.model.tflite", "2c3df750"),
     "sha256.model.tflite must be a SHA-256"),
    (_with_line(f"sha256../model.tflite={'0' * 64}"),
     "sha256../model.tflite must name a file in the bundle directory"),
])
def test_a_file_that_is_not_the_one_recorded_is_refused_in_one_line(
        damage, says, c_decoders, device_dir, tmp_path):
    """bundle.txt's sha256 lines are checked when the bundle is opened, before any file is
    read: a damaged or missing file, or a missing or malformed line, is refused in one
    line, exit status 1."""
    bundle = c_loop._damaged(device_dir, tmp_path, damage)
    for program in c_decoders:
        status, lines = c_loop._refusal(program, bundle)
        assert status == 1 and len(lines) == 1, lines
        assert lines[0].startswith("kit_decode: error: ") and says in lines[0], lines
