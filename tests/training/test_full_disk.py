"""A disk that fills while training: one line, the last good epoch kept, and the same
command resumes once there is room again. On a real small tmpfs when this process may
mount one (root), and always with a writer that fails as a full disk does."""

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training import cli
from training import run_dir as rd

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TINY = ["--data", "default", "--preset", "tiny", "--max-source-length", "40",
        "--max-target-length", "12", "--batch-size", "32", "--learning-rate", "0.003",
        "--eval-samples", "20", "--limit", "160", "--accept-trivial"]
# The tiny run holds about 940 kB after epoch 1 (model.keras and last.keras, 460 kB
# each); saving epoch 2 beside them needs as much again.
SMALL_DISK = "1400k"


def digests(out):
    """Every file of the run but the TensorBoard logs, by content."""
    return {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(out.rglob("*"))
            if path.is_file() and rd.LOG_DIR not in path.relative_to(out).parts}


def one_error_line(stderr):
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of SMALL_DISK mounted in tmp_path, and a function that enlarges it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs",
                           str(mount)], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")

    def make_room():
        subprocess.run(["mount", "-o", "remount,size=16m", str(mount)], check=True, timeout=30)

    try:
        yield mount, make_room
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=30)


@pytest.mark.slow
def test_a_real_full_disk_stops_with_one_line_and_the_same_command_resumes(small_disk):
    mount, make_room = small_disk
    out = mount / "run"
    command = [sys.executable, "-m", "kit", "train", "--out", str(out), *TINY, "--epochs", "3"]
    full = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=ENV)
    assert full.returncode == 1, full.stdout + full.stderr
    line = one_error_line(full.stderr)
    assert "No space left on device" in line and "epoch 2" in line, line
    state = json.loads((out / rd.CHECKPOINT_DIR / "state.json").read_text())
    assert state["epochs_done"] == 1
    assert json.loads((out / rd.RUN_JSON).read_text())["epochs_done"] == 1
    assert not [path for path in out.rglob(".*")]  # no temporary file left behind
    rd.load_keras(out / rd.CHECKPOINT_DIR / "last.keras", compile=True)  # whole

    make_room()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=ENV)
    assert again.returncode == 0, again.stderr
    assert f"resuming {out} after epoch 1" in again.stdout
    info = rd.read_run(out)
    assert info.epochs_done == 3
    assert info.raw["history"][:1] == state["history"]


@pytest.mark.slow
def test_a_full_disk_at_the_last_write_of_an_epoch_changes_nothing(tmp_path, monkeypatch,
                                                                    capsys):
    """The disk fills when state.json, the last file of epoch 2, is written: the
    models and run.json written before it for epoch 2 are not put in place either."""
    out = tmp_path / "run"
    args = ["--out", str(out), *TINY]
    assert cli.main([*args, "--epochs", "1"]) == 0
    before = digests(out)

    real_write = rd.write_synced

    def fills_at_state_json(path, data):
        if ".state.json." in os.path.basename(path):
            with open(path, "wb") as handle:
                handle.write(b'{"epochs_')  # what fitted before the disk was full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, data)

    monkeypatch.setattr(rd, "write_synced", fills_at_state_json)
    capsys.readouterr()
    assert cli.main([*args, "--epochs", "2"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device while saving epoch 2" in line, line
    assert "kept as of epoch 1" in line and "run the same command" in line
    assert digests(out) == before
    assert not [path for path in out.rglob(".*")]

    monkeypatch.undo()
    assert cli.main([*args, "--epochs", "2"]) == 0
    assert f"resuming {out} after epoch 1" in capsys.readouterr().out
    assert rd.read_run(out).epochs_done == 2
