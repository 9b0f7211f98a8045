"""A disk that fills while export writes a bundle: one line, no half-written bundle
(the staging directory is removed) and --out as it was, also under --overwrite."""

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from export import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def snapshot(directory):
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def old_bundle(out):
    """What export takes for one of its bundles (and so may replace with --overwrite)."""
    out.mkdir(parents=True)
    (out / "bundle.json").write_text('{"recipe": "old"}')
    (out / "model.tflite").write_bytes(b"old model")
    return snapshot(out)


def test_a_full_disk_leaves_no_bundle_and_the_old_one_whole(tiny_run, tmp_path, monkeypatch,
                                                           capsys):
    """The disk fills at the bundle's last file (report.json), after model.tflite,
    the tokenizer and bundle.json were written to the staging directory."""
    out = tmp_path / "bundles" / "tiny"
    before = old_bundle(out)

    def full_disk(path, values, **options):
        with open(path, "wb") as handle:
            handle.write(b'{"form')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(cli, "write_json", full_disk)
    code = cli.main([str(tiny_run), "--recipe", "float32", "--out", str(out), "--overwrite",
                     "--samples", "4"])
    assert code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "No space left on device" in lines[0], err
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no staging left


def test_a_failed_rename_puts_the_old_bundle_back(tmp_path, monkeypatch):
    out = tmp_path / "tiny"
    before = old_bundle(out)
    staging = tmp_path / ".tiny.partial-x"
    staging.mkdir()
    real_rename = os.rename

    def refuses_the_new_bundle(source, target):
        if Path(source) == staging:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_rename(source, target)

    monkeypatch.setattr(cli.os, "rename", refuses_the_new_bundle)
    with pytest.raises(OSError, match="No space"):
        cli._replace(staging, out, overwrite=True)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.partial-x", "tiny"]


def test_a_real_full_disk(tiny_run, tmp_path):
    """On a 64 kB tmpfs (when this process may mount one): model.tflite does not fit."""
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                          capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        out = disk / "tiny"
        before = old_bundle(out)
        result = subprocess.run(
            [sys.executable, "-m", "kit", "export", str(tiny_run), "--recipe", "float32",
             "--out", str(out), "--overwrite", "--samples", "2"], cwd=ROOT,
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        lines = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(lines) == 1 and "No space left on device" in lines[0], result.stderr
        assert snapshot(out) == before
        assert sorted(p.name for p in disk.iterdir()) == ["tiny"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], timeout=30)
