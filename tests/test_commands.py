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
    command = ([sys.executable, "-c", NO_TF, *args] if device
               else [sys.executable, "-m", "kit", *args])
    return subprocess.run(command, cwd=ROOT, input=stdin, capture_output=True, timeout=timeout,
                          env=ENV)


def error_lines(result):
    return [line for line in result.stderr.decode().splitlines() if "error" in line]


def test_usage_and_unknown_command():
    result = kit()
    assert result.returncode == 2 and b"demo" in result.stdout
    result = kit("fly")
    assert result.returncode == 2 and error_lines(result) == [
        "error: unknown command 'fly'; expected demo, train, export, decode, evaluate or "
        "attention"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`python -m kit demo --quick`, end to end (the full demo takes minutes)."""
    base = tmp_path_factory.mktemp("demo")
    run, bundle = base / "run", base / "bundle"
    result = kit("demo", "--quick", "--run", str(run), "--bundle", str(bundle))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    # No library start-up noise: stderr holds export's own progress lines only.
    assert all(line.startswith("export: ") for line in result.stderr.decode().splitlines())
    return run, bundle, result.stdout.decode()


def test_demo_trains_exports_decodes_and_draws(demo):
    import matplotlib.image

    run, bundle, out = demo
    assert (run / "run.json").is_file() and (bundle / "model.tflite").is_file()
    assert "== 3/3 decode" in out and "'Sun 29 Nov 2026'" in out
    assert "epoch 8/8" in out and "Epoch 8/8" not in out and "Epoch 1/1" not in out
    for picture in (run.parent / "run-attention.png", run.parent / "run-training.png"):
        assert str(picture) in out
        assert matplotlib.image.imread(str(picture)).shape[0] > 200
    assert "next:" in out and "python -m kit decode" in out.split("next:")[1]
    again = kit("demo", "--quick", "--run", str(run), "--bundle", str(bundle))
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
    assert error_lines(binary) == ["error: standard input line 1 is not UTF-8 text (byte 0xff "
                                   "at offset 0); its output line is empty"]
    assert b"Traceback" not in missing.stderr + binary.stderr


def _metrics_line(result):
    """The metrics printed on stdout as a dict of floats."""
    line = result.stdout.decode().strip().splitlines()[-1]
    return {name: float(value) for name, value in (part.split() for part in line.split(", "))}


def test_evaluate_a_run_and_its_bundle_on_a_users_file(demo, tmp_path):
    run, bundle, _ = demo
    from kit.runtime import Bundle

    translate = Bundle.load(bundle).translate
    sources = ["1 May 1990", "3rd of march 1999", "TUESDAY, 14 FEBRUARY 2045"]
    outputs = [translate(s) for s in sources]
    # The first source: its output is one of two references (exact); the second: a
    # wrong reference only; the third: its output as the only reference.
    data = tmp_path / "mine.tsv"
    data.write_text(f"{sources[0]}\tnot it\n{sources[0]}\t{outputs[0]}\n"
                    f"{sources[1]}\t{outputs[1]}x\nno tab here\n"
                    f"{sources[2]}\t{outputs[2]}\n", encoding="utf-8")
    predictions = tmp_path / "pred.tsv"
    on_device = kit("evaluate", str(bundle), "--data", f"tsv:{data}", "--output",
                    str(predictions), device=True)
    assert on_device.returncode == 0, on_device.stderr.decode()
    metrics = _metrics_line(on_device)
    assert metrics["exact_match"] == pytest.approx(200 / 3, abs=0.05)
    assert metrics["sources"] == 3
    assert "skipped 1 malformed line(s), first at line 4" in on_device.stderr.decode()
    rows = [line.split("\t") for line in predictions.read_text().splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (sources[0], outputs[0], "1"), (sources[1], outputs[1], "0"),
        (sources[2], outputs[2], "1")]
    # The run's Keras model decodes the same tokens as its float32 bundle.
    keras_side = kit("evaluate", str(run), "--data", f"tsv:{data}", "--limit", "2")
    assert keras_side.returncode == 0, keras_side.stderr.decode()
    assert _metrics_line(keras_side)["sources"] == 2
    assert _metrics_line(keras_side)["exact_match"] == 50.0


@pytest.mark.parametrize("args, message", [
    (["--data", "tsv:/no/such.tsv"], "tsv:/no/such.tsv: file not found"),
    (["--data", "default"], "--data must be tsv:PATH"),
    (["--data", "tsv:{empty}"], "no source<TAB>target line"),
    (["--data", "tsv:{data}", "--limit", "0"], "--limit must be from 1"),
])
def test_evaluate_bad_input(demo, tmp_path, args, message):
    _, bundle, _ = demo
    (tmp_path / "empty.tsv").write_text("\n")
    (tmp_path / "data.tsv").write_text("a\tb\n")
    args = [a.format(empty=tmp_path / "empty.tsv", data=tmp_path / "data.tsv") for a in args]
    result = kit("evaluate", str(bundle), *args, device=True)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert b"Traceback" not in result.stderr


def test_decode_strategies_and_json_without_tensorflow(demo):
    import json

    _, bundle, _ = demo
    greedy = kit("decode", str(bundle), "1 May 1990", device=True)
    beams = kit("decode", str(bundle), "1 May 1990", "--beam-size", "3", "--json",
                device=True)
    assert beams.returncode == 0, beams.stderr.decode()
    result = json.loads(beams.stdout)
    assert result["input"] == "1 May 1990" and len(result["beams"]) <= 3
    assert result["text"] == result["beams"][0]["text"]
    assert result["ms_per_token"] > 0 and result["ids"][-1:] in ([3], [])
    scores = [b["score"] for b in result["beams"]]
    assert scores == sorted(scores, reverse=True)
    sampled = [kit("decode", str(bundle), "1 May 1990", "--sampling", "top_p", "--top-p",
                   "0.95", "--temperature", "2", "--seed", "5", device=True).stdout
               for _ in range(2)]
    assert sampled[0] == sampled[1] and greedy.returncode == 0
    for args, code in ((["--beam-size", "2", "--sampling", "top_k"], 2),
                       (["--max-new-tokens", "999"], 1), (["--top-p", "0"], 1),
                       (["--temperature", "nan"], 1), (["--beam-size", "0"], 1),
                       (["--top-p", "half"], 2)):
        bad = kit("decode", str(bundle), "x", *args, device=True)
        assert bad.returncode == code, (args, bad.stderr)
        assert len(error_lines(bad)) == 1 and b"Traceback" not in bad.stderr


def test_ctrl_c_anywhere_is_one_line_and_130(monkeypatch, capsys):
    """Ctrl-C where a command has no handler of its own (the demo drawing its pictures
    gave a 68-line traceback) ends with one line and the shell's 130."""
    import kit.__main__ as entry

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "_command", lambda name, args: (interrupted, False))
    assert entry.main(["demo", "--help"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("command, needs", [
    (["train"], "requirements.txt"), (["decode", "B"], "requirements-runtime.txt")])
def test_a_missing_package_names_the_requirements_file(monkeypatch, capsys, command, needs):
    import kit.__main__ as entry

    def missing(argv):
        raise ModuleNotFoundError("No module named 'sacrebleu'", name="sacrebleu")

    monkeypatch.setattr(entry, "_command", lambda name, args: (missing, False))
    assert entry.main([*command, "--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: python -m kit {command[0]} needs the package 'sacrebleu'")
    assert f"pip install -r {needs}" in err and len(err.splitlines()) == 1


def test_a_missing_module_of_the_kit_is_a_bug_with_its_traceback(monkeypatch):
    import kit.__main__ as entry

    def missing(argv):
        raise ModuleNotFoundError("No module named 'kit.gone'", name="kit.gone")

    monkeypatch.setattr(entry, "_command", lambda name, args: (missing, False))
    with pytest.raises(ModuleNotFoundError):
        entry.main(["train", "--help"])


def test_evaluate_options_may_come_before_the_bundle(demo):
    """`evaluate --data X BUNDLE` was sent to the run-directory path (TensorFlow)."""
    run, bundle, _ = demo
    tsv = run / "samples" / "test.tsv"
    result = kit("evaluate", "--data", f"tsv:{tsv}", str(bundle), device=True)
    assert result.returncode == 0, result.stderr.decode()[-500:]


def test_a_missing_sentencepiece_names_its_own_install(monkeypatch, capsys):
    """requirements-tflite-runtime.txt leaves sentencepiece out (char bundles need none)."""
    import kit.__main__ as entry

    def missing(argv):
        raise ModuleNotFoundError("No module named 'sentencepiece'", name="sentencepiece")

    monkeypatch.setattr(entry, "_command", lambda name, args: (missing, False))
    assert entry.main(["decode", "B", "--help"]) == 1
    assert "pip install 'sentencepiece>=0.2,<0.3'" in capsys.readouterr().err
