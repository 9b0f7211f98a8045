"""Training end to end on small data: every data spec, resuming, bad input."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import default_sigint, small_memory
from training import run_dir as rd
from training.options import TrainError, TrainOptions
from training.train import train

ROOT = Path(__file__).resolve().parents[2]


def tiny_options(out, **overrides):
    values = dict(data="default", out=str(out), preset="tiny", epochs=2, batch_size=32,
                  max_source_length=40, max_target_length=12, limit=160, eval_samples=40,
                  learning_rate=3e-3, accept_trivial=True)
    return TrainOptions(**{**values, **overrides})


def read_tokenizer(out):
    return rd.load_tokenizers(out)


def run_cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_a_run_that_learned_nothing_ends_in_one_error_line_and_keeps_its_files(tmp_path):
    # A learning rate of 1e-9 leaves the model where it started: no better than the
    # trivial baselines, which every epoch reports and the end refuses.
    out = tmp_path / "run"
    result = run_cli("train", "--data", "default", "--out", str(out), "--preset", "tiny",
                     "--epochs", "2", "--batch-size", "32", "--max-source-length", "40",
                     "--max-target-length", "12", "--limit", "160", "--eval-samples", "20",
                     "--learning-rate", "1e-9")
    assert result.returncode == 1, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: the model learned nothing useful")
    assert "Likely cause: " in error[0] and "--accept-trivial" in error[0]
    assert "epoch 1 is no better than a trivial baseline: " in result.stdout
    assert "epoch 2 is no better than a trivial baseline: " in result.stdout
    assert "Likely cause: " in result.stdout.split("epoch 2 is no better")[1]
    info = json.loads((out / rd.RUN_JSON).read_text())
    assert info["complete"] and (out / rd.KERAS_MODEL_FILE).is_file()
    assert info["history"][-1]["baselines_verdict"]["trivial"]
    assert 0 < info["baselines"]["majority_token_accuracy"] < 1
    assert info["baselines"]["unigram_loss"] > 0


def test_a_run_that_learns_beats_the_baselines(tmp_path):
    out = tmp_path / "run"
    info = train(tiny_options(out, epochs=4, limit=2000, accept_trivial=False))
    verdict = info["history"][-1]["baselines_verdict"]
    assert not verdict["trivial"], verdict
    assert verdict["sample_distinct_outputs"] > 20
    assert info["history"][-1]["val_loss"] < 0.95 * info["baselines"]["unigram_loss"]


def test_default_data_gives_a_complete_run_directory(tmp_path):
    info = train(tiny_options(tmp_path / "run"))
    out = tmp_path / "run"
    for name in (rd.KERAS_MODEL_FILE, "source_tokenizer.json", "target_tokenizer.json",
                 rd.RUN_JSON, rd.TRAIN_SAMPLE, rd.TEST_SAMPLE):
        assert (out / name).is_file(), name
    assert any((out / rd.LOG_DIR).rglob("events.out.tfevents*"))
    read = rd.read_run(out)
    assert read.metric == "exact_match" and read.epochs_done == 2
    assert read.precision == "float32" and info["device"] == "CPU"
    for key in ("val_loss", "val_token_accuracy", "val_exact_match", "test_exact_match"):
        assert key in read.metrics
    # The recorded exact match is that of the final model's decoding, beam search of
    # the default size.
    from kit.metrics import exact_match
    from training.data import load_pairs
    from training.evaluate import translate
    from training.options import DEFAULT_BEAM_SIZE

    assert info["decoding"]["beam_size"] == DEFAULT_BEAM_SIZE
    pairs = load_pairs("default", limit=160).validation[:40]
    best = keras.saving.load_model(out / rd.KERAS_MODEL_FILE, compile=False)
    hypotheses = translate(best, read_tokenizer(out), [s for s, _ in pairs],
                           beam_size=DEFAULT_BEAM_SIZE)
    assert read.metrics["val_decoded"] == 40
    assert read.metrics["val_exact_match"] == round(
        exact_match(hypotheses, [t for _, t in pairs]), 3)
    assert [h["epoch"] for h in info["history"]] == [1, 2]
    model = keras.saving.load_model(out / rd.KERAS_MODEL_FILE, compile=False)
    assert model.config.max_source_length == 40


def test_the_loss_goes_down(tmp_path):
    info = train(tiny_options(tmp_path / "run", epochs=3, limit=400))
    losses = [h["val_loss"] for h in info["history"]]
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_mixed_precision_run(tmp_path):
    info = train(tiny_options(tmp_path / "run", epochs=1, precision="mixed_float16"))
    assert info["precision"] == "mixed_float16"
    model = keras.saving.load_model(tmp_path / "run" / rd.KERAS_MODEL_FILE, compile=False)
    # The model really trained under the policy: float16 compute, float32 variables.
    assert model.dtype_policy.name == "mixed_float16"
    attention = model.decoder_blocks[0].self_attention
    assert attention.dtype_policy.name == "mixed_float16"
    assert attention.compute_dtype == "float16" and attention.variable_dtype == "float32"
    assert all(w.dtype == "float32" for w in model.weights)
    assert np.isfinite(info["metrics"]["val_loss"])


def test_tsv_data_reports_bleu(tmp_path, monkeypatch):
    from kit.tokenizers.base import VocabularyTokenizer
    from training import data

    path = tmp_path / "pairs.tsv"
    lines = [f"{a} plus {b}\t{a + b}" for a in range(30) for b in range(10)]
    path.write_text("\n".join(lines + ["malformed line without a tab"]) + "\n", encoding="utf-8")
    checked, encoded = [], []
    real_check, real_encode = data.check_spec, VocabularyTokenizer.encode
    monkeypatch.setattr(data, "check_spec", lambda spec: checked.append(spec) or
                        real_check(spec))
    monkeypatch.setattr(VocabularyTokenizer, "encode", lambda self, text: encoded.append(text)
                        or real_encode(self, text))
    info = train(tiny_options(tmp_path / "run", data=f"tsv:{path}", epochs=1, limit=None))
    assert info["metric"] == "bleu"
    assert {"val_bleu", "val_chrf", "test_bleu"} <= set(info["metrics"])
    # The spec is checked once, before TensorFlow; a training source (sources are in
    # one split only) is encoded once for its vocabulary's unknown share
    # (training/choices.py) and once for training, whatever chooses S and T.
    assert checked == [f"tsv:{path}"]
    train_sources = {source for source, _ in rd.read_pairs(tmp_path / "run" / rd.TRAIN_SAMPLE)}
    assert max(encoded.count(source) for source in train_sources) == 2


def test_tfds_data_through_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    options = tiny_options(tmp_path / "run", data="tfds:ted_hrlr_translate/pt_to_en",
                           epochs=1, limit=24, max_source_length=64, max_target_length=64)
    with tfds.testing.mock_data(num_examples=24):
        info = train(options)
    assert info["metric"] == "bleu" and info["train_pairs"] == 24
    assert info["data_fingerprint"] == {"kind": "tfds", "version": "1.0.0", "splits": {},
                                        "name": "ted_hrlr_translate/pt_to_en/1.0.0"}
    # The data set rebuilt at another version since: extending the run is refused.
    state_path = tmp_path / "run" / rd.CHECKPOINT_DIR / "state.json"
    state = json.loads(state_path.read_text())
    state["data_fingerprint"]["version"] = "0.9.0"
    state_path.write_text(json.dumps(state))
    with tfds.testing.mock_data(num_examples=24), pytest.raises(
            TrainError, match=r"changed since .*run was trained on it \(version '0\.9\.0' "
                              r"-> '1\.0\.0'\); train into a new --out"):
        train(dataclasses.replace(options, epochs=2))


def test_same_command_on_a_finished_run_does_nothing(tmp_path, capsys):
    options = tiny_options(tmp_path / "run", epochs=1)
    first = train(options)
    stamp = (tmp_path / "run" / rd.KERAS_MODEL_FILE).stat().st_mtime_ns
    assert train(options)["metrics"] == first["metrics"]
    assert "nothing to do" in capsys.readouterr().out
    assert (tmp_path / "run" / rd.KERAS_MODEL_FILE).stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_different_run_in_the_same_directory_is_refused(tmp_path):
    train(tiny_options(tmp_path / "run", epochs=1))
    with pytest.raises(TrainError, match="different run.*seed"):
        train(tiny_options(tmp_path / "run", epochs=1, seed=7))


def test_resuming_on_a_changed_tsv_file_is_refused_and_an_older_run_still_resumes(
        tmp_path, capsys):
    """The run records its file's size and SHA-256; a file replaced since (more lines,
    or the same size with other bytes) would change the splits, the characters and the
    validation set that the losses are compared on."""
    import hashlib

    data = tmp_path / "pairs.tsv"
    original = "".join(f"{a} plus {b}\t{a + b}\n" for a in range(20) for b in range(10))
    data.write_text(original, encoding="utf-8")
    out = tmp_path / "run"
    options = tiny_options(out, data=f"tsv:{data}", epochs=1, limit=None)
    info = train(options)
    assert info["data_fingerprint"] == {
        "kind": "tsv", "size": len(original),
        "sha256": hashlib.sha256(original.encode()).hexdigest()}
    longer = dataclasses.replace(options, epochs=2)

    data.write_text(original + "new line\tnew target\n", encoding="utf-8")
    with pytest.raises(TrainError) as caught:
        train(longer)
    assert str(caught.value) == (
        f"tsv:{data} changed since {out} was trained on it (size {len(original)} -> "
        f"{len(original) + 20} bytes); train into a new --out, or put the original data "
        "back to resume this run")
    data.write_text(original.replace("1 plus 2\t3", "2 plus 1\t3"), encoding="utf-8")
    with pytest.raises(TrainError, match=rf"same size \({len(original)} bytes\), different "
                                         r"SHA-256\); train into a new --out"):
        train(longer)
    assert json.loads((out / rd.RUN_JSON).read_text())["epochs_done"] == 1

    # A run made before fingerprints: it resumes, and records the file from then on.
    data.write_text(original, encoding="utf-8")
    state_path = out / rd.CHECKPOINT_DIR / "state.json"
    state = json.loads(state_path.read_text())
    del state["data_fingerprint"]
    state_path.write_text(json.dumps(state))
    capsys.readouterr()
    info = train(longer)
    assert info["epochs_done"] == 2 and info["data_fingerprint"]["size"] == len(original)
    assert (f"note: {out} was made before runs recorded their data's size and hash; "
            f"recording those of tsv:{data} now") in capsys.readouterr().out
    assert json.loads(state_path.read_text())["data_fingerprint"] == info["data_fingerprint"]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_a_device_as_tsv_data_fails_at_once_with_one_line(tmp_path, kind):
    """Stat alone tells them apart: opening a FIFO with no writer would block forever,
    and /dev/zero would be read until memory runs out (the timeout, or `small_memory`,
    fails the test)."""
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "pairs.tsv"
        os.mkfifo(path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "kit", "train", "--data", f"tsv:{path}",
                             "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env=env, preexec_fn=small_memory)
    assert result.returncode == 1
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert result.stderr.splitlines() == [
        f"error: tsv:{path}: {path} is {what}, expected a file (pipes and devices are "
        "never read: save to a file)"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_made_with_one_shared_tokenizer_resumes_evaluates_and_exports(tmp_path):
    """A run of the previous version: one tokenizer.json for both sides, and a
    state.json whose identity has one "tokenizer". Words and their reversals have the
    same characters as often, so each side's vocabulary is the shared one."""
    from kit.runtime import Bundle
    from kit.tokenizers import CharTokenizer

    data = tmp_path / "reverse.tsv"
    words = [f"{a}{b}{c}" for a in "abcdef" for b in "ghijkl" for c in "mnopqr"]
    data.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words), encoding="utf-8")
    out = tmp_path / "run"
    options = tiny_options(out, data=f"tsv:{data}", epochs=1, limit=None,
                           source_tokenizer="char", target_tokenizer="char",
                           max_source_length=None, max_target_length=None)
    train(options)
    tokenizers = rd.load_tokenizers(out)
    assert tokenizers.source == tokenizers.target
    (out / "source_tokenizer.json").rename(out / rd.LEGACY_TOKENIZER_FILE)
    (out / "target_tokenizer.json").unlink()
    state_path = out / rd.CHECKPOINT_DIR / "state.json"
    state = json.loads(state_path.read_text())
    identity = state["identity"]
    del identity["source_tokenizer"], identity["target_tokenizer"]
    state["identity"] = {**identity, "tokenizer": "char"}
    state_path.write_text(json.dumps(state))

    shared = rd.load_tokenizers(out)
    assert shared.source is shared.target and isinstance(shared.source, CharTokenizer)
    info = train(dataclasses.replace(options, epochs=2))  # resumes: same identity
    assert info["epochs_done"] == 2 and not (out / "source_tokenizer.json").exists()
    evaluated = run_cli("evaluate", str(out), "--data", f"tsv:{data}", "--limit", "20")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    exported = run_cli("export", str(out), "--recipe", "float32", "--out",
                       str(tmp_path / "bundle"), "--samples", "8", "--batch-sizes", "1")
    assert exported.returncode == 0, exported.stderr[-2000:]
    bundle = Bundle.load(tmp_path / "bundle")  # format 4: the shared one on each side
    assert bundle.source_tokenizer == bundle.target_tokenizer == shared.source
    assert json.loads((tmp_path / "bundle" / "report.json").read_text())["token_exact"] == 100


def test_a_foreign_directory_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="not empty"):
        train(tiny_options(tmp_path / "run"))
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_a_diverging_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(TrainError, match="NaN"):
        train(tiny_options(tmp_path / "run", learning_rate=1e12, label_smoothing=0.0))
    assert not (tmp_path / "run" / rd.RUN_JSON).exists()


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_epoch(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", "default", "--out", str(out), "--preset", "tiny",
            "--max-source-length", "40", "--max-target-length", "12", "--limit", "600",
            "--batch-size", "16", "--learning-rate", "0.003", "--eval-samples", "20"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "kit", *args, "--epochs", "40"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=default_sigint)
    state_path = out / rd.CHECKPOINT_DIR / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if state_path.exists() and json.loads(state_path.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    interrupted = json.loads(state_path.read_text())
    done = interrupted["epochs_done"]
    assert 1 <= done < 40
    assert json.loads((out / rd.RUN_JSON).read_text())["complete"] is False

    result = run_cli(*args, "--epochs", str(done + 1))
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} after epoch {done}" in result.stdout
    info = json.loads((out / rd.RUN_JSON).read_text())
    assert info["epochs_done"] == done + 1
    assert info["history"][:done] == interrupted["history"]


@pytest.mark.parametrize("args, message", [
    (["--data", "tsv:/no/such/file.tsv"], "no/such/file.tsv"),
    (["--data", "wikipedia"], "unknown --data"),
    (["--epochs", "0"], "--epochs must be an integer from 1"),
])
def test_cli_bad_input_gives_one_line_and_exit_1(tmp_path, args, message):
    result = run_cli("train", "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
