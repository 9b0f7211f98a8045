"""kit/files.py: the atomic writer's temporary files, what a killed write leaves, and
what is not a regular file (devices, FIFOs, links, directories)."""

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kit.files import atomic_write, remove_partial_writes, replacing, write_json, write_synced

ROOT = Path(__file__).resolve().parents[2]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "run.json"
    atomic_write(path, "old")
    with pytest.raises(RuntimeError):
        with replacing(path) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["run.json"]


def test_remove_partial_writes_takes_only_the_named_files_leftovers(tmp_path):
    # What a SIGKILL inside `replacing` leaves: its hidden temporary, never renamed.
    for name in (".run.json.abc123.tmp", ".last.keras.x1.keras", ".notes.txt.q.tmp",
                 "run.json", ".hidden"):
        (tmp_path / name).write_text("x")
    assert remove_partial_writes(tmp_path, ("run.json", "last.keras")) == 2
    assert sorted(os.listdir(tmp_path)) == [".hidden", ".notes.txt.q.tmp", "run.json"]


# -- what is not a regular file is written into, never renamed over (as root, a rename
# over /dev/null turns the device into a regular file for every user of the machine).
# These tests make their own FIFO and device nodes in tmp_path: a wrong writer breaks
# only those.

def _char_device(path, minor):
    """A character device node at `path` (1, minor): 3 is null, 7 is full. Root only."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return path


def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # A reader that is already there (non-blocking, so no thread): the writer's open
    # does not wait, and the few bytes fit the pipe's buffer.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write(fifo, "source\toutput\n")
        received = os.read(reader, 1000)
    finally:
        os.close(reader)
    assert received == b"source\toutput\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_a_device_node_is_written_into_not_replaced(tmp_path):
    null = _char_device(tmp_path / "null", 3)
    atomic_write(null, "predictions\n")
    write_json(null, {"a": 1})
    write_synced(null, "in place, where fsync has nothing to flush\n")
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.listdir(tmp_path) == ["null"]


def test_a_full_device_is_an_error_naming_it_and_stays_a_device(tmp_path):
    full = _char_device(tmp_path / "full", 7)
    with pytest.raises(OSError) as raised:
        atomic_write(full, "x" * 100_000)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(full)
    assert stat.S_ISCHR(os.lstat(full).st_mode) and os.listdir(tmp_path) == ["full"]


def test_a_directory_is_an_error_and_stays_as_it_was(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir()
    (directory / "kept").write_text("kept")
    with pytest.raises(IsADirectoryError):
        atomic_write(directory, "x")
    assert os.listdir(directory) == ["kept"] and os.listdir(tmp_path) == ["out"]


def test_a_link_to_a_file_stays_a_link_and_its_file_is_replaced(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "pred.tsv").write_text("old")
    link = tmp_path / "pred.tsv"
    link.symlink_to("real/pred.tsv")
    atomic_write(link, "new")
    assert link.is_symlink() and (tmp_path / "real" / "pred.tsv").read_text() == "new"
    assert os.listdir(tmp_path / "real") == ["pred.tsv"]


def test_a_link_into_proc_writes_into_the_stream_it_names(tmp_path):
    # /dev/stdout is a link to /proc/self/fd/1: the process's own standard output, here
    # a file opened for appending. Renaming over the file there would leave the
    # process's stream on the old one; the bytes are appended to the stream instead.
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    log = tmp_path / "log"
    log.write_text("before\n")
    code = ("import sys; from kit.files import atomic_write; "
            f"atomic_write({str(link)!r}, 'written\\n'); print('after')")
    with open(log, "a") as stdout:
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=stdout, check=True)
    assert log.read_text() == "before\nwritten\nafter\n"
    assert link.is_symlink() and sorted(os.listdir(tmp_path)) == ["log", "stdout"]
