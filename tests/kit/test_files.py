"""kit/files.py: the atomic writer's temporary files, and what a killed write leaves."""

import os

import pytest

from kit.files import atomic_write, remove_partial_writes, replacing


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
