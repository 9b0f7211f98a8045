"""Beam search in evaluation: a run's Keras model (batched over sources) and a bundle on
the device runtime give the same beams, a beam of one is greedy, and `evaluate` says
which decoding it used."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit.tokenizers import source_ids
from training import run_dir as rd
from training.evaluate import greedy_translate, translate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_and_sources(tiny_run):
    model = rd.load_keras(tiny_run / rd.KERAS_MODEL_FILE)
    tokenizers = rd.load_tokenizers(tiny_run)
    sources = [s for s, _ in rd.read_pairs(tiny_run / rd.TEST_SAMPLE)[:20]] + ["x", "12 zz 19"]
    return model, tokenizers, sources


@pytest.fixture(scope="module")
def float32_bundle(tiny_float32_bundle):
    return tiny_float32_bundle


def _source_rows(model, tokenizers, sources):
    return np.array([source_ids(tokenizers.source, s, model.config.max_source_length)
                     for s in sources], np.int32)


def test_a_beam_of_one_is_greedy(model_and_sources):
    model, tokenizers, sources = model_and_sources
    target = tokenizers.target
    greedy = greedy_translate(model, tokenizers, sources)
    rows = _source_rows(model, tokenizers, sources)
    beams = model.beam_decode(rows, target.bos_id, target.eos_id, beam_size=1)
    assert [target.decode(b[0].ids) for b in beams] == greedy
    assert translate(model, tokenizers, sources, beam_size=1) == greedy


def test_batched_beams_equal_one_source_at_a_time(model_and_sources):
    model, tokenizers, sources = model_and_sources
    target = tokenizers.target
    rows = _source_rows(model, tokenizers, sources)
    alone = model.beam_decode(rows, target.bos_id, target.eos_id, beam_size=3,
                              batch_size=1)
    batched = model.beam_decode(rows, target.bos_id, target.eos_id, beam_size=3,
                                batch_size=8)
    assert len(batched) == len(sources)
    for one, many in zip(alone, batched):
        assert [h.ids for h in one] == [h.ids for h in many]
        np.testing.assert_allclose([h.score for h in one], [h.score for h in many], atol=1e-4)
    outputs = translate(model, tokenizers, sources, beam_size=3)
    assert outputs == [target.decode(b[0].ids) for b in batched]


def _evaluate(main, model_dir, data, *args):
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(model_dir), "--data", f"tsv:{data}", *args])
    return code, out.getvalue(), err.getvalue()


def test_evaluate_with_beams_on_the_run_and_on_the_bundle(tiny_run, float32_bundle,
                                                          model_and_sources, tmp_path):
    from kit.runtime.evaluate import main as on_device
    from training.evaluate_cli import main as on_keras

    model, tokenizers, sources = model_and_sources
    pairs = rd.read_pairs(tiny_run / rd.TEST_SAMPLE)[:20]
    data = tmp_path / "mine.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    predicted = {}
    for name, main, model_dir in (("keras", on_keras, tiny_run),
                                  ("device", on_device, float32_bundle)):
        output = tmp_path / f"{name}.tsv"
        code, out, err = _evaluate(main, model_dir, data, "--beam-size", "3",
                                   "--output", str(output))
        assert code == 0, err
        assert "with beam search (3 beams, length penalty 1)" in err
        predicted[name] = [line.split("\t")[1] for line in output.read_text().splitlines()]
    # The bundle's beams (LiteRT, one source at a time) are Keras's (batched).
    assert predicted["device"] == predicted["keras"]
    assert predicted["keras"] == translate(model, tokenizers, [s for s, _ in pairs], beam_size=3)
    code, _, err = _evaluate(on_device, float32_bundle, data)
    assert code == 0 and "with greedy decoding" in err


@pytest.mark.parametrize("args, message", [
    (["--beam-size", "0"], "--beam-size must be from 1 to 64, got 0"),
    (["--beam-size", "65"], "--beam-size must be from 1 to 64, got 65"),
    (["--length-penalty", "11"], "--length-penalty must be from -10 to 10, got 11.0"),
])
def test_evaluate_refuses_bad_beam_options_in_one_line(float32_bundle, tmp_path, args,
                                                       message):
    data = tmp_path / "d.tsv"
    data.write_text("a\tb\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "kit", "evaluate", str(float32_bundle),
                             "--data", f"tsv:{data}", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {message}"], result.stderr
    assert "Traceback" not in result.stderr
