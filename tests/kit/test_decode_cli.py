"""`python -m kit decode`'s smaller cases (issue 16, row 7 and its message list), run
in-process on the session's tiny float32 bundle."""

import io
import json
import sys

import pytest

from kit.runtime.cli import main


class _Stdin:
    """Standard input holding `data` bytes, as `decode` reads it (its .buffer)."""

    def __init__(self, data):
        self.buffer = io.BytesIO(data)


@pytest.fixture
def bundle(tiny_bundles):
    return str(tiny_bundles[0] / "float32")


def decode(capsys, monkeypatch, *args, stdin=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", _Stdin(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bom_on_standard_input_is_not_text(bundle, capsys, monkeypatch):
    """An editor's BOM before the first line was decoded as an unseen character."""
    _, plain, _ = decode(capsys, monkeypatch, bundle, stdin=b"1 May 1990\n")
    code, out, err = decode(capsys, monkeypatch, bundle, stdin=b"\xef\xbb\xbf1 May 1990\n")
    assert code == 0 and out == plain, err
    assert "never saw" not in err


def test_json_escapes_line_separators(bundle, capsys, monkeypatch):
    """U+2028 and U+2029 end a line for JavaScript and many line readers."""
    code, out, _ = decode(capsys, monkeypatch, bundle, "1 May\u2028 1990\u2029", "--json")
    assert code == 0
    assert "\u2028" not in out and "\u2029" not in out and "\\u2028" in out
    assert json.loads(out)["input"] == "1 May\u2028 1990\u2029"


@pytest.mark.parametrize("args, warned", [
    (["--top-p", "0.5"], ["--top-p is ignored with --sampling greedy"]),
    (["--temperature", "2", "--seed", "1"], ["--temperature is ignored", "--seed is ignored"]),
    (["--sampling", "top_k", "--top-p", "0.5"], ["--top-p is ignored with --sampling top_k"]),
    (["--beam-size", "2", "--temperature", "2"], ["--temperature is ignored with --beam-size"]),
    (["--length-penalty", "0.5"], ["--length-penalty is ignored with --sampling greedy"]),
    (["--sampling", "top_p", "--top-p", "0.5", "--seed", "3"], []),
])
def test_options_the_chosen_decoding_does_not_read_are_warned(bundle, capsys, monkeypatch,
                                                              args, warned):
    code, _, err = decode(capsys, monkeypatch, bundle, "1 May 1990", *args)
    assert code == 0
    warnings = [line for line in err.splitlines() if "is ignored" in line]
    assert len(warnings) == len(warned), err
    for line, start in zip(warnings, warned):
        assert line.startswith(f"warning: {start}"), line


def test_an_output_cut_at_the_limit_is_warned(bundle, capsys, monkeypatch):
    code, _, err = decode(capsys, monkeypatch, bundle, "1 May 1990", "--max-new-tokens", "2")
    assert code == 0
    assert "warning: argument 1: no end of output after 2 tokens" in err


def test_non_finite_logits_are_one_error_line(bundle, capsys, monkeypatch):
    """A broken model's NaN logits decoded to garbage and exit 0; --json printed NaN."""
    import numpy as np

    from kit.runtime import steps

    for loop in (steps.CompiledSteps, steps.DirectSteps, steps.RunnerSteps):
        for name in ("step", "step_rows"):
            real = getattr(loop, name)
            monkeypatch.setattr(loop, name, lambda self, *args, real=real: real(self, *args)
                                * np.nan)
    code, out, err = decode(capsys, monkeypatch, bundle, "1 May 1990", "2 May 1990", "--json")
    assert code == 1 and out == ""
    assert err.splitlines() == [err.splitlines()[0]]
    assert err.startswith("error: the model's logits at step 1 are not finite")


@pytest.mark.parametrize("batch_size", ["2", "32"])
def test_batch_size_gives_the_same_lines_in_order(bundle, capsys, monkeypatch, batch_size):
    """--batch-size decodes inputs together through the batch signatures: the same
    output line for every input, empty and refused lines kept in their places."""
    data = ("1 May 1990\n\n3 June 2001\n\xff\n" + "7 July 1977\n" * 3 + "12/01/1999\n"
            ).encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")
    code, one_by_one, err = decode(capsys, monkeypatch, bundle, stdin=data)
    assert code == 1 and "line 4 is not UTF-8" in err
    code, batched, err = decode(capsys, monkeypatch, bundle, "--batch-size", batch_size,
                                stdin=data)
    assert code == 1 and "line 4 is not UTF-8" in err
    assert batched == one_by_one and len(batched.splitlines()) == 8


def test_batch_size_with_beams_or_json_is_refused(bundle, capsys, monkeypatch):
    for extra in (["--json"], ["--beam-size", "2"], ["--sampling", "top_k"]):
        with pytest.raises(SystemExit) as raised:
            decode(capsys, monkeypatch, bundle, "x", "--batch-size", "4", *extra)
        assert raised.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--batch-size decodes greedily" in err
