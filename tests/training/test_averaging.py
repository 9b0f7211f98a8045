"""Checkpoint averaging: the mean of the kept epochs' weights, the right epochs after a
resume, the pruned files, and `--average-checkpoints 0` as before."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit.models import Seq2SeqTransformer, preset
from training import averaging
from training import run_dir as rd
from training.options import TrainOptions
from training.train import train

ROOT = Path(__file__).resolve().parents[2]


def tiny_model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = Seq2SeqTransformer(preset("tiny"))
    model.build()
    return model


def test_averaging_identical_checkpoints_gives_the_checkpoint(tmp_path):
    model = tiny_model(0)
    want = model.get_weights()
    paths = []
    for i in range(3):
        paths.append(tmp_path / averaging.EPOCH_WEIGHTS.format(i + 1))
        model.save_weights(str(paths[-1]))
    other = tiny_model(1)
    got = averaging.average_weights(other, paths)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_averaging_two_checkpoints_gives_their_mean(tmp_path):
    first, second = tiny_model(0), tiny_model(1)
    first.save_weights(str(tmp_path / "epoch_001.weights.h5"))
    second.save_weights(str(tmp_path / "epoch_002.weights.h5"))
    got = averaging.average_weights(tiny_model(2), [tmp_path / "epoch_001.weights.h5",
                                                    tmp_path / "epoch_002.weights.h5"])
    for g, a, b in zip(got, first.get_weights(), second.get_weights()):
        np.testing.assert_allclose(g, (a + b) / 2, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(first.get_weights(),
                                                      second.get_weights()))


def test_the_averaged_epochs_are_the_last_k_and_the_others_are_pruned(tmp_path):
    history = [{"epoch": e} for e in range(1, 8)]
    assert averaging.averaged_epochs(history, 3) == [5, 6, 7]
    assert averaging.averaged_epochs(history, 10) == list(range(1, 8))
    assert averaging.averaged_epochs(history, 0) == []
    for epoch in range(1, 8):
        (tmp_path / averaging.EPOCH_WEIGHTS.format(epoch)).write_bytes(b"w")
    (tmp_path / ".epoch_008.weights.h5.abc.weights.h5").write_bytes(b"half written")
    (tmp_path / "last.keras").write_bytes(b"kept")
    averaging.prune_weight_files(tmp_path, [5, 6, 7])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch_005.weights.h5", "epoch_006.weights.h5", "epoch_007.weights.h5", "last.keras"]


def tiny_options(out, **overrides):
    values = dict(data="default", out=str(out), preset="tiny", epochs=2, batch_size=32,
                  max_source_length=40, max_target_length=12, limit=160, eval_samples=20,
                  learning_rate=3e-3, beam_size=1, accept_trivial=True)
    return TrainOptions(**{**values, **overrides})


def weights_of(path):
    return rd.load_keras(path).get_weights()


@pytest.mark.slow
def test_a_resumed_run_averages_its_last_epochs(tmp_path):
    out = tmp_path / "run"
    train(tiny_options(out, epochs=2, average_checkpoints=3))
    checkpoints = out / rd.CHECKPOINT_DIR
    assert sorted(averaging.kept_weight_files(checkpoints)) == [1, 2]
    epoch_2 = rd.load_keras(out / rd.KERAS_MODEL_FILE)
    epoch_2.load_weights(str(checkpoints / averaging.EPOCH_WEIGHTS.format(2)))
    epoch_2 = epoch_2.get_weights()

    info = train(tiny_options(out, epochs=4, average_checkpoints=3))  # resumes after 2
    files = averaging.kept_weight_files(checkpoints)
    assert sorted(files) == [2, 3, 4]
    # Epoch 2's file is the one the first command wrote: resuming did not rewrite it.
    vessel = rd.load_keras(out / rd.KERAS_MODEL_FILE)
    vessel.load_weights(str(files[2]))
    for a, b in zip(vessel.get_weights(), epoch_2):
        np.testing.assert_array_equal(a, b)

    record = info["averaging"]
    assert record["epochs"] == [2, 3, 4] and record["k"] == 3
    assert record["best_single_val_loss"] == min(h["val_loss"] for h in info["history"])
    mean = averaging.average_weights(vessel, [files[e] for e in (2, 3, 4)])
    final = weights_of(out / rd.KERAS_MODEL_FILE)
    is_mean = all(np.allclose(a, b, atol=1e-6) for a, b in zip(final, mean))
    # model.keras is the average exactly when its validation loss is not worse.
    assert is_mean == record["kept"] == (record["val_loss"] <= record["best_single_val_loss"])
    want = record["val_loss"] if record["kept"] else record["best_single_val_loss"]
    assert info["metrics"]["val_loss"] == pytest.approx(want)
    assert json.loads((out / rd.RUN_JSON).read_text())["averaging"] == record


def test_average_checkpoints_0_keeps_the_best_epoch_and_no_epoch_files(tmp_path):
    out = tmp_path / "run"
    info = train(tiny_options(out, epochs=3, average_checkpoints=0))
    assert info["averaging"] is None
    assert not averaging.kept_weight_files(out / rd.CHECKPOINT_DIR)
    best = min(info["history"], key=lambda h: h["val_loss"])
    assert info["best_epoch"] == best["epoch"]
    assert info["metrics"]["val_loss"] == best["val_loss"]
    assert info["decoding"] == {"method": "greedy", "beam_size": 1}


@pytest.mark.parametrize("args, message", [
    (["--average-checkpoints", "-1"], "--average-checkpoints must be an integer from 0 to 100"),
    (["--average-checkpoints", "101"], "--average-checkpoints must be an integer from 0 to 100"),
    (["--beam-size", "0"], "--beam-size must be an integer from 1 to 64, got 0"),
    (["--beam-size", "65"], "--beam-size must be an integer from 1 to 64, got 65"),
])
def test_train_refuses_bad_bounds_in_one_line(tmp_path, args, message):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "kit", "train", "--out",
                             str(tmp_path / "run"), *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
