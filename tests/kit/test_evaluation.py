"""kit/evaluation.py: what `python -m kit evaluate --output` may write. Never an input
of the command (the data file, a file of the run or bundle it evaluates) nor a file of
any run or bundle directory, refused in one line before any decoding; into a device or
a stream (/dev/null, /dev/stdout), written in place, the device left a device."""

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from training import run_dir as rd

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def kit(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


def one_error_line(result):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def snapshot(directory):
    """{relative path: (kind, content digest)} of everything under `directory`."""
    return {str(path.relative_to(directory)):
            ("link", os.readlink(path)) if path.is_symlink() else
            ("file", hashlib.sha256(path.read_bytes()).hexdigest()) if path.is_file() else
            ("dir", None) for path in sorted(directory.rglob("*"))}


@pytest.fixture
def place(tiny_run, tiny_bundles, tmp_path):
    """Copies of the tiny run and its float32 bundle, and a user's data file, alone in
    tmp_path: on a writer that does not refuse, a test destroys only these."""
    shutil.copytree(tiny_run, tmp_path / "run")
    shutil.copytree(tiny_bundles[0] / "float32", tmp_path / "bundle")
    pairs = rd.read_pairs(tiny_run / rd.TEST_SAMPLE)[:4]
    (tmp_path / "mine.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs),
                                       encoding="utf-8")
    return tmp_path


# (the directory evaluated, the --output path, a link made first: (name, its target))
REFUSED = {
    "the data file": ("bundle", "mine.tsv", None),
    "a link to the data file": ("bundle", "link.tsv", ("link.tsv", "mine.tsv")),
    "the bundle's model, from the command that loads it": ("bundle", "bundle/model.tflite",
                                                           None),
    "a hard link to the bundle's model": ("bundle", "hard.tflite", ("hard.tflite", None)),
    "a new file inside the bundle": ("bundle", "bundle/pred.tsv", None),
    "the run's model": ("run", "run/model.keras", None),
    "the run's run.json": ("run", "run/run.json", None),
    "another run's samples, which export verifies on": ("bundle", "run/samples/test.tsv",
                                                        None),
    "another bundle's tokenizer": ("run", "bundle/source_tokenizer.json", None),
}


@pytest.mark.parametrize("case", REFUSED)
def test_an_output_that_is_an_input_or_a_model_file_is_refused_untouched(place, case):
    model, output, link = REFUSED[case]
    if link and link[1]:
        (place / link[0]).symlink_to(link[1])
    elif link:
        os.link(place / "bundle" / "model.tflite", place / link[0])
    before = snapshot(place)
    result = kit("evaluate", str(place / model), "--data", f"tsv:{place / 'mine.tsv'}",
                 "--output", str(place / output))
    line = one_error_line(result)
    assert line.startswith(f"error: --output {place / output} is "), line
    assert "choose a new file" in line and "evaluating" not in result.stderr
    assert snapshot(place) == before


def test_output_into_dev_null_and_dev_stdout_writes_in_place(place):
    data = ["--data", f"tsv:{place / 'mine.tsv'}"]
    result = kit("evaluate", str(place / "bundle"), *data, "--output", "/dev/null")
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    result = kit("evaluate", str(place / "bundle"), *data, "--output", "/dev/stdout")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == 5 and all(len(row.split("\t")) == 4 for row in rows[:4])
    assert rows[4].startswith("exact_match ")
    assert os.path.islink("/dev/stdout") and sorted(os.listdir(place)) == [
        "bundle", "mine.tsv", "run"]


def test_output_into_a_full_device_is_one_error_line(place):
    result = kit("evaluate", str(place / "bundle"), "--data", f"tsv:{place / 'mine.tsv'}",
                 "--output", "/dev/full")
    assert one_error_line(result) == "error: No space left on device: /dev/full"
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


@pytest.mark.parametrize("args", [["--limit", "abc"], ["--beam-size", "x"], []])
def test_evaluate_usage_errors_are_one_line(capsys, args):
    """argparse's usage errors were two lines (usage, then the error)."""
    from kit.evaluation import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["RUN", *args] if args else [])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_evaluate_counts_unseen_characters_and_cut_sources():
    """As decode warns per input, evaluate says how many sources the model misses."""
    from kit.evaluation import coverage_warnings
    from kit.tokenizers.char import CharTokenizer

    tokenizer = CharTokenizer.train(["abc abc", "cab"])
    lines = coverage_warnings(["abc", "abz", "abcabcabc", "ab\u00e9abcabc"], tokenizer, 6)
    assert lines == [
        "warning: 2 of 4 sources have characters (or words) the model never saw; they "
        "read as unknown",
        "warning: 2 of 4 sources are longer than the 6 tokens the model reads; the rest "
        "of each is cut"]
    assert coverage_warnings(["abc", "cab"], tokenizer, 6) == []


def test_a_handful_of_sources_is_warned(tiny_bundles, tmp_path, capsys):
    from kit.runtime.evaluate import main

    data = tmp_path / "three.tsv"
    data.write_text("1 May 1990\t1990-05-01\n2 May 1990\t1990-05-02\n"
                    "3 May 1990\t1990-05-03\n", encoding="utf-8")
    assert main([str(tiny_bundles[0] / "float32"), "--data", f"tsv:{data}"]) == 0
    err = capsys.readouterr().err
    assert "warning: only 3 distinct sources: each one moves exact match by 33 points" in err


def test_an_output_in_a_missing_directory_is_refused_before_decoding(tmp_path):
    """It failed only after every source was decoded, naming a temporary file."""
    from kit.evaluation import EvaluationError, check_output

    with pytest.raises(EvaluationError, match="the directory .*nowhere does not exist"):
        check_output(str(tmp_path / "nowhere" / "p.tsv"), "tsv:x.tsv", str(tmp_path / "b"))
