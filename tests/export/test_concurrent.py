"""--out that something else takes while export runs: another export to the same new
directory, a user's directory, or (under --overwrite) a bundle swapped for something
that is not one. Export checks again when it puts its bundle in place, and never
replaces or deletes what it did not write (issue 16, row 3)."""

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from export import cli
from export.errors import ExportError

pytestmark = pytest.mark.slow


def snapshot(directory):
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def quiet(message):
    pass


def test_two_exports_to_one_new_out_one_succeeds_and_its_bundle_stays(tiny_run, tmp_path,
                                                                      monkeypatch, capsys):
    """The second export runs, start to finish, while the first writes its bundle: the
    first then finds --out taken, keeps it and fails with one line."""
    from kit.runtime import Bundle

    out = tmp_path / "bundles" / "tiny"
    real_write_bundle = cli._write_bundle
    others = []

    def another_export_meanwhile(*args, **kwargs):
        row = real_write_bundle(*args, **kwargs)
        if not others:
            monkeypatch.setattr(cli, "_write_bundle", real_write_bundle)
            others.append(cli.export_run(tiny_run, "float16", out, samples=2, progress=quiet,
                                         batch_sizes=(1,)))  # the race, not the pairs
        return row

    monkeypatch.setattr(cli, "_write_bundle", another_export_meanwhile)
    code = cli.main([str(tiny_run), "--recipe", "float32", "--out", str(out), "--samples", "2",
                     "--batch-sizes", "1"])

    assert code == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "appeared" in lines[0] and str(out) in lines[0], captured.err
    assert "written to" not in captured.out
    # The other export's bundle is whole, verified and its own; no staging is left.
    bundle = Bundle.load(out)
    assert json.loads((out / "bundle.json").read_text())["recipe"] == "float16"
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"] == "float16" and report["token_exact"] == others[0]["recipes"][0][
        "token_exact"]
    assert bundle.source_tokenizer is not None
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


@pytest.mark.parametrize("what", ["a user's directory", "an empty directory", "a file"])
def test_an_out_that_appears_meanwhile_is_left_alone(tmp_path, what):
    out = tmp_path / "tiny"
    staging = tmp_path / ".tiny.partial-x"
    staging.mkdir()
    (staging / "bundle.json").write_text('{"recipe": "new"}')
    if what == "a file":
        out.write_text("mine")
    else:
        out.mkdir()
        if what == "a user's directory":
            (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ExportError, match="appeared while export ran"):
        cli._replace(staging, out)
    assert snapshot(tmp_path) == before  # the caller removes its own staging directory
    assert out.is_dir() == (what != "a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.partial-x", "tiny"]


def test_an_empty_out_made_for_the_bundle_is_filled(tmp_path):
    out = tmp_path / "tiny"
    out.mkdir()
    staging = tmp_path / ".tiny.partial-x"
    staging.mkdir()
    (staging / "bundle.json").write_text('{"recipe": "new"}')
    cli._replace(staging, out, empty_seen=True)
    assert (out / "bundle.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_an_empty_out_made_for_the_bundle_that_filled_meanwhile_is_left_alone(tmp_path):
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    staging = tmp_path / ".tiny.partial-x"
    staging.mkdir()
    (staging / "bundle.json").write_text('{"recipe": "new"}')
    with pytest.raises(ExportError, match="appeared while export ran"):
        cli._replace(staging, out, empty_seen=True)
    assert (out / "notes.txt").read_text() == "mine"


def bundle_dir(path, recipe):
    path.mkdir(parents=True)
    (path / "bundle.json").write_text(json.dumps({"recipe": recipe}))
    (path / "model.tflite").write_bytes(recipe.encode())


def test_overwrite_replaces_the_bundle_found_at_the_end(tmp_path):
    out = tmp_path / "tiny"
    bundle_dir(out, "old")
    staging = tmp_path / ".tiny.partial-x"
    bundle_dir(staging, "new")
    cli._replace(staging, out, overwrite=True)
    assert json.loads((out / "bundle.json").read_text())["recipe"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_overwrite_leaves_a_bundle_swapped_for_a_user_directory(tmp_path):
    """--out was a bundle when export checked it, a user's directory at the end."""
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 a user's file")
    staging = tmp_path / ".tiny.partial-x"
    bundle_dir(staging, "new")
    before = snapshot(tmp_path)
    with pytest.raises(ExportError, match="not a bundle written by export"):
        cli._replace(staging, out, overwrite=True)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.partial-x", "tiny"]


def test_a_failed_rename_of_the_claimed_out_removes_only_the_claim(tmp_path, monkeypatch):
    out = tmp_path / "tiny"
    staging = tmp_path / ".tiny.partial-x"
    bundle_dir(staging, "new")
    real_rename = os.rename

    def refuses(source, target):
        if Path(source) == staging:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_rename(source, target)

    monkeypatch.setattr(cli.os, "rename", refuses)
    with pytest.raises(OSError, match="Input/output error"):
        cli._replace(staging, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.partial-x"]
