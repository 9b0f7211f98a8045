"""`python -m kit export` given hostile input: an --out it must never delete, a damaged
samples file, a user's umask. Each case runs the command in a subprocess."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from export.cli import export_run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# `python -m kit` that also says whether TensorFlow was imported: the refusals below
# must happen before any TensorFlow work.
_KIT_REPORTING_TF = ("import sys\n"
                     "from kit.__main__ import main\n"
                     "code = main(sys.argv[1:])\n"
                     "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
                     "sys.exit(code)\n")


def run_kit(*args, timeout=180):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", _KIT_REPORTING_TF, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def one_error_line(result):
    """The one `error:` line of a failed command, which printed no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def snapshot(directory):
    """{relative path: content digest} of every file under `directory`."""
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the tiny run, alone in its own parent: a test may try to destroy it."""
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run, copy)
    return copy


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    """A float32 bundle written by the CLI under umask 022."""
    out = tmp_path_factory.mktemp("hostile-bundle") / "bundle"
    previous = os.umask(0o022)
    try:
        result = run_kit("export", str(tiny_run), "--recipe", "float32", "--out", str(out),
                         "--samples", "2")
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("target", ["run", "parent", "unrelated", "link to the run"])
def test_overwrite_never_deletes_what_export_did_not_write(run, tmp_path, target):
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "holiday.jpg").write_bytes(b"\xff\xd8 a user's file")
    (tmp_path / "link").symlink_to(run, target_is_directory=True)
    out = {"run": run, "parent": run.parent, "unrelated": unrelated,
           "link to the run": tmp_path / "link"}[target]
    before = snapshot(tmp_path)

    result = run_kit("export", str(run), "--recipe", "float32", "--out", str(out),
                     "--overwrite")

    line = one_error_line(result)
    assert line.startswith("export: error: ") and "choose" in line, line
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no progress line
    assert "tensorflow imported: False" in result.stdout
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "photos", "runs"]


def test_overwrite_replaces_a_bundle_and_a_bundle_set(bundle, tiny_run, tmp_path):
    single = tmp_path / "bundle"
    shutil.copytree(bundle, single)
    # The shape of `--recipe all`: report.json beside one bundle per recipe.
    bundle_set = tmp_path / "set"
    shutil.copytree(bundle, bundle_set / "float32")
    shutil.copyfile(bundle / "report.json", bundle_set / "report.json")

    # One signature pair: what is tested here is the overwrite, not the pairs.
    result = run_kit("export", str(tiny_run), "--recipe", "float16", "--out", str(single),
                     "--overwrite", "--samples", "2", "--batch-sizes", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads((single / "bundle.json").read_text())["recipe"] == "float16"

    result = run_kit("export", str(tiny_run), "--recipe", "float16", "--out",
                     str(bundle_set), "--overwrite", "--samples", "2", "--batch-sizes", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads((bundle_set / "bundle.json").read_text())["recipe"] == "float16"
    assert not (bundle_set / "float32").exists()
    # Neither a staging directory nor the old bundle is left beside them.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "set"]


def test_a_bundle_holding_a_user_file_is_not_replaced(bundle, tiny_run, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    result = run_kit("export", str(tiny_run), "--recipe", "float32", "--out", str(out),
                     "--overwrite")
    assert "not a bundle written by export" in one_error_line(result)
    assert "tensorflow imported: False" in result.stdout
    assert snapshot(out) == before


def test_a_samples_line_without_a_tab_is_one_line_before_any_tensorflow(run, tmp_path):
    test_sample = run / "samples" / "test.tsv"
    lines = test_sample.read_text(encoding="utf-8").splitlines()
    test_sample.write_text("\n".join(lines[:3] + ["no tab on this line"] + lines[3:]) + "\n",
                           encoding="utf-8")
    result = run_kit("export", str(run), "--recipe", "float32", "--out",
                     str(tmp_path / "bundle"))
    line = one_error_line(result)
    assert "test.tsv, line 4: expected source<TAB>target" in line, line
    assert "tensorflow imported: False" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_a_samples_file_of_four_columns_is_one_line_before_any_tensorflow(run, tmp_path):
    # What `evaluate --output RUN/samples/test.tsv` wrote before it was refused (source,
    # output, reference, exact): export took the rest of each line as the target,
    # "verified" on it and reported 0% exact match for a model that scores 81%.
    test_sample = run / "samples" / "test.tsv"
    pairs = [line.split("\t") for line in test_sample.read_text(encoding="utf-8").splitlines()]
    test_sample.write_text("".join(f"{s}\t{t}\t{t}\t1\n" for s, t in pairs), encoding="utf-8")
    result = run_kit("export", str(run), "--recipe", "float32", "--out",
                     str(tmp_path / "bundle"))
    line = one_error_line(result)
    assert "test.tsv, line 1: expected source<TAB>target, found 4 tab-separated fields" in line
    assert "tensorflow imported: False" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_bundle_files_get_the_umask_permissions(bundle):
    """Under umask 022 every file is 0644 and every directory 0755, not the owner-only
    0600 / 0700 of tempfile's mkstemp / mkdtemp: another user reads the bundle."""
    modes = {str(path.relative_to(bundle.parent)): stat.S_IMODE(path.stat().st_mode)
             for path in [bundle, *bundle.rglob("*")]}
    # The directory, model, two tokenizers, two JSON, bundle.txt, two vocabularies.
    assert len(modes) == 9, modes
    for name, mode in modes.items():
        expected = 0o755 if (bundle.parent / name).is_dir() else 0o644
        assert mode == expected, f"{name}: {mode:o}"


def test_the_in_process_api_refuses_the_run_directory_too(run):
    from export.errors import ExportError

    before = snapshot(run)
    with pytest.raises(ExportError, match="run directory"):
        export_run(run, "float32", run, overwrite=True, progress=lambda message: None)
    assert snapshot(run) == before


@pytest.mark.parametrize("link", ["self", "pair", "inside"])
def test_an_out_that_is_a_symbolic_link_loop_is_one_line(tiny_run, tmp_path, link):
    """export ended in a RuntimeError traceback and train in "File exists"."""
    from export.errors import ExportError
    from training.options import TrainError, TrainOptions, check_options

    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a" if link != "self" else "b")
    out = {"self": tmp_path / "b", "pair": tmp_path / "a", "inside": tmp_path / "a" / "x"}[link]
    with pytest.raises(ExportError, match="is a symbolic link loop"):
        export_run(tiny_run, "float32", out, progress=lambda message: None)
    with pytest.raises(TrainError, match="is a symbolic link loop"):
        check_options(TrainOptions(data="default", out=str(out)))
