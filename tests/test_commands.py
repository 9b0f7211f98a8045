"""The user's commands end to end: python -m kit, demo, decode."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

# Runs `python -m kit ...` with tensorflow and keras made unimportable, as on a device
# where only numpy and ai-edge-litert are installed.
NO_TF = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} is not installed on this device")
sys.meta_path.insert(0, Block())
from kit.__main__ import main
sys.argv[0] = "kit"
sys.exit(main(sys.argv[1:]))
"""


def kit(*args, stdin=None, device=False, timeout=600):
    command = [sys.executable, "-c", NO_TF, *args] if device else [sys.executable, "-m", "kit", *args]
    return subprocess.run(command, cwd=ROOT, input=stdin, capture_output=True, timeout=timeout,
                          env=ENV)


def error_lines(result):
    return [l for l in result.stderr.decode().splitlines() if "error" in l]


def test_usage_and_unknown_command():
    result = kit()
    assert result.returncode == 2 and b"demo" in result.stdout
    result = kit("fly")
    assert result.returncode == 2 and error_lines(result) == [
        "error: unknown command 'fly'; expected demo, train, export or decode"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo, shrunk: the tiny model and one epoch (the real one takes minutes)."""
    base = tmp_path_factory.mktemp("demo")
    run, bundle = base / "run", base / "bundle"
    result = kit("demo", "--run", str(run), "--bundle", str(bundle), "--preset", "tiny",
                 "--epochs", "1", "--recipe", "float32")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return run, bundle, result.stdout.decode()


def test_demo_trains_exports_and_decodes(demo):
    run, bundle, out = demo
    assert (run / "run.json").is_file() and (bundle / "model.tflite").is_file()
    assert "== 3/3 decode" in out and "'Sun 29 Nov 2026'" in out
    again = kit("demo", "--run", str(run), "--bundle", str(bundle), "--preset", "tiny",
                "--epochs", "1", "--recipe", "float32")
    assert again.returncode == 0
    assert b"nothing to do" in again.stdout and b"reusing it" in again.stdout


def test_decode_without_tensorflow_or_keras(demo):
    _, bundle, _ = demo
    from kit.runtime import Bundle

    expected = [Bundle.load(bundle).translate(t) for t in ("1 May 1990", "x")]
    args = kit("decode", str(bundle), "1 May 1990", "x", device=True)
    assert args.returncode == 0, args.stderr.decode()
    assert args.stdout.decode().splitlines() == expected
    piped = kit("decode", str(bundle), stdin=b"1 May 1990\nx\n", device=True)
    assert piped.returncode == 0 and piped.stdout.decode().splitlines() == expected


def test_decode_bad_input(demo, tmp_path):
    _, bundle, _ = demo
    missing = kit("decode", str(tmp_path / "nothing"), "x", device=True)
    assert missing.returncode == 1
    assert error_lines(missing) == [f"error: bundle directory not found: {tmp_path / 'nothing'}"]
    binary = kit("decode", str(bundle), stdin=b"\xff\xfe\x00bad\n", device=True)
    assert binary.returncode == 1
    assert error_lines(binary) == ["error: standard input is not UTF-8 text"]
    assert b"Traceback" not in missing.stderr + binary.stderr
