"""Tests for kit/tsv.py: what it refuses to open, and the fingerprint of a file."""

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kit.tsv import TsvError, fingerprint, read_bytes, read_tsv
from tests.conftest import small_memory

ROOT = Path(__file__).resolve().parents[2]

# Reads `path` as the TSV of every command, in a child: if the file were opened, a FIFO
# would block it (the timeout fails the test) and /dev/zero would fill its memory
# (`small_memory` makes that a quick MemoryError).
READ = """
import sys
from kit.tsv import TsvError, read_tsv
try:
    read_tsv("tsv:" + sys.argv[1], sys.argv[1])
except TsvError as error:
    sys.exit(f"error: {error}")
"""


def special_file(kind, tmp_path):
    """A path of `kind` that is not a regular file; the socket stays bound while used."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "pairs.tsv")
        return str(tmp_path / "pairs.tsv"), None
    if kind == "device":
        return "/dev/zero", None
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "pairs.sock"))
    return str(tmp_path / "pairs.sock"), server


@pytest.mark.parametrize("kind, what", [("fifo", "is a FIFO (named pipe)"),
                                        ("device", "is a character device"),
                                        ("socket", "is a socket")])
def test_what_is_not_a_regular_file_is_refused_before_it_is_opened(tmp_path, kind, what):
    path, keep = special_file(kind, tmp_path)
    try:
        result = subprocess.run([sys.executable, "-c", READ, path], cwd=ROOT, timeout=60,
                                capture_output=True, text=True, preexec_fn=small_memory)
    finally:
        if keep is not None:
            keep.close()
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: tsv:{path}: {path} {what}, expected a file (pipes and devices are never "
        "read: save to a file)"]


def test_a_directory_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(TsvError, match="is a directory, expected a file$"):
        read_tsv(f"tsv:{tmp_path}", tmp_path)
    with pytest.raises(TsvError, match="nope.tsv: file not found$"):
        read_tsv(f"tsv:{tmp_path / 'nope.tsv'}", tmp_path / "nope.tsv")


def test_a_link_to_a_regular_file_is_read(tmp_path):
    (tmp_path / "pairs.tsv").write_text("a\tb\n", encoding="utf-8")
    (tmp_path / "link.tsv").symlink_to(tmp_path / "pairs.tsv")
    assert read_tsv("tsv:link.tsv", tmp_path / "link.tsv") == ([("a", "b")], [])


def test_the_fingerprint_is_the_size_and_sha256_of_the_bytes_read(tmp_path):
    """The bytes read once, parsed and fingerprinted (the file was read twice)."""
    data = os.urandom(3 << 20) + b"\na\tb\n"
    (tmp_path / "pairs.tsv").write_bytes(data)
    raw = read_bytes("tsv:pairs.tsv", tmp_path / "pairs.tsv")
    assert raw == data
    assert fingerprint(raw) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert fingerprint(b"") == {"size": 0, "sha256": hashlib.sha256(b"").hexdigest()}


@pytest.mark.parametrize("model", ["run", "bundle"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_evaluate_refuses_a_fifo_or_a_device_in_one_line(tiny_run, tiny_float32_bundle,
                                                         tmp_path, model, kind):
    """Both `evaluate` commands (a run's Keras model, a bundle on the device runtime)
    return at once, before loading the model."""
    path, _ = special_file(kind, tmp_path)
    model_dir = tiny_run if model == "run" else tiny_float32_bundle
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "kit", "evaluate", str(model_dir), "--data",
                             f"tsv:{path}"], cwd=ROOT, timeout=60, capture_output=True,
                            text=True, env=env, preexec_fn=small_memory)
    assert result.returncode == 1
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert result.stderr.splitlines() == [
        f"error: tsv:{path}: {path} is {what}, expected a file (pipes and devices are "
        "never read: save to a file)"]


def test_spaces_around_fields_are_warned_in_evaluate(tmp_path):
    """A reference with a trailing space made exact match 0 without a word."""
    from kit.evaluation import read_references

    path = tmp_path / "spaced.tsv"
    path.write_text("a\tb \n c\td\ne\tf\n", encoding="utf-8")
    warning = read_references(f"tsv:{path}").warning
    assert warning.startswith(f"warning: 2 of 3 pairs of tsv:{path} have spaces")
    path.write_text("a\tb\nc\td e\n", encoding="utf-8")  # spaces inside are text
    assert read_references(f"tsv:{path}").warning is None
