"""kit/commands.py: one parser class and one set of number options for every command,
and the one rule for what a command line gets wrong."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit.commands import CommandParser, bounds_error, integer, number

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

# Each command with the arguments it requires, so that the unknown option is what the
# command line gets wrong.
COMMANDS = {
    "train": ["--out", "runs/never-written"],
    "export": ["RUN_DIR", "--recipe", "float32", "--out", "BUNDLE_DIR"],
    "decode": ["BUNDLE_DIR", "text"],
    "evaluate": ["RUN_DIR", "--data", "tsv:never-read.tsv"],
    "attention": ["RUN_DIR", "text"],
    "demo": [],
}


def kit(*args):
    return subprocess.run([sys.executable, "-m", "kit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=ENV)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_turns_an_unknown_option_into_one_error_line(command):
    result = kit(command, *COMMANDS[command], "--no-such-option")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: unrecognized arguments: --no-such-option (see python -m kit {command} "
        "--help)"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_its_help_on_stdout(command):
    result = kit(command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"usage: python -m kit {command} ")


def parse(capsys, *argv):
    """(exit code or None, stderr, namespace or None) of a parser of the number options."""
    parser = CommandParser("probe")
    parser.add_argument("--beam-size", action=integer(1, 64), default=1)
    parser.add_argument("--top-p", action=number(1e-6, 1.0), default=0.9)
    parser.add_argument("--samples", action=integer(1), default=200)
    parser.add_argument("--rate", action=number(), default=None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code, capsys.readouterr().err, None
    return None, capsys.readouterr().err, args


@pytest.mark.parametrize("argv, line", [
    (["--beam-size", "0"], "error: --beam-size must be from 1 to 64, got 0"),
    (["--beam-size=65"], "error: --beam-size must be from 1 to 64, got 65"),
    (["--top-p", "0"], "error: --top-p must be from 1e-06 to 1, got 0.0"),
    (["--top-p", "nan"], "error: --top-p must be from 1e-06 to 1, got nan"),
    (["--samples", "-3"], "error: --samples must be at least 1, got -3"),
])
def test_a_number_outside_its_bounds_is_refused_in_one_line_naming_the_option(
        capsys, argv, line):
    code, err, _ = parse(capsys, *argv)
    assert code == 1 and err == line + "\n"


@pytest.mark.parametrize("argv, line", [
    (["--beam-size", "x"], "argument --beam-size: expected an integer, got 'x'"),
    (["--beam-size", "2.0"], "argument --beam-size: expected an integer, got '2.0'"),
    (["--top-p", "half"], "argument --top-p: expected a number, got 'half'"),
])
def test_a_number_that_is_not_one_is_a_usage_error(capsys, argv, line):
    code, err, _ = parse(capsys, *argv)
    assert code == 2 and err == f"error: {line} (see python -m kit probe --help)\n"


def test_numbers_within_bounds_and_unbounded_ones_are_read():
    parser = CommandParser("probe")
    parser.add_argument("--beam-size", action=integer(1, 64), default=1)
    parser.add_argument("--rate", action=number(), default=None)
    args = parser.parse_args(["--beam-size", "64", "--rate", "nan"])
    assert args.beam_size == 64 and isinstance(args.beam_size, int)
    assert args.rate != args.rate  # nan, left for the command to judge
    assert parser.parse_args([]).beam_size == 1


def test_bounds_error():
    assert bounds_error(3, 1, 3) is None and bounds_error(5, low=1) is None
    assert bounds_error(0.5, high=0.25) == "must be at most 0.25, got 0.5"
    assert bounds_error(4, 1, 3) == "must be from 1 to 3, got 4"


def test_the_device_commands_parse_without_keras_or_tensorflow():
    """decode and evaluate BUNDLE_DIR build their parsers from kit.commands on a device
    where neither is installed."""
    code = ("import sys, kit.runtime.cli, kit.runtime.evaluate; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'tensorflow', 'training', 'export')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=ENV)
    assert out.stdout.strip() == "[]"
