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
