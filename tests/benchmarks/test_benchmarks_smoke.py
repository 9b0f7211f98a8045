"""The benchmarks' own pieces behave, and both scripts run end to end on a tiny setup."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import _common as common
from benchmarks import decode_speed, pipeline_speed, train_speed
from kit.models import preset
from kit.runtime.recipes import RECIPES
from kit.runtime.steps import MODES

TINY = preset("tiny", source_vocab_size=20, target_vocab_size=20, dropout=0.0)


def tutorial_logits(model, source, target):
    return np.asarray(model((np.array(source), np.array(target)), training=False))


def test_tutorial_decoder_is_causal():
    model = train_speed.TutorialTransformer(TINY)
    source = [[5, 6, 7, 8]]
    full = tutorial_logits(model, source, [[2, 9, 10, 11, 12]])
    changed = tutorial_logits(model, source, [[2, 9, 10, 15, 16]])
    np.testing.assert_allclose(full[:, :3], changed[:, :3], atol=1e-5)
    assert not np.allclose(full[:, 3:], changed[:, 3:], atol=1e-5)


def test_tutorial_model_ignores_source_padding():
    model = train_speed.TutorialTransformer(TINY)
    target = [[2, 9, 10]]
    short = tutorial_logits(model, [[5, 6, 7]], target)
    padded = tutorial_logits(model, [[5, 6, 7, 0, 0, 0]], target)
    np.testing.assert_allclose(short, padded, atol=1e-5)


def test_tutorial_positional_encoding_layout():
    table = train_speed.tutorial_positional_encoding(10, 8)
    assert table.shape == (10, 8)
    np.testing.assert_allclose(table[0], [0, 0, 0, 0, 1, 1, 1, 1])  # sin(0) | cos(0)
    np.testing.assert_allclose(table[3, 0], np.sin(3.0), rtol=1e-6)


@pytest.fixture(scope="module")
def data():
    return common.load_data("tiny", train_size=300, validation_size=20)


def as_arrays(dataset):
    return [[t.numpy() for t in tf.nest.flatten(batch)] for batch in dataset]


def test_pipelines_are_deterministic_so_a_twin_can_count_tokens(data):
    for pipeline in (common.padded_to_longest, common.bucketed):
        first = as_arrays(common.epochs_of(pipeline, data.train, 32, 2))
        second = as_arrays(common.epochs_of(pipeline, data.train, 32, 2))
        assert len(first) == len(second) > 0
        for a, b in zip(first, second):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)


def test_the_tutorial_pipeline_pads_each_batch_to_its_longest(data):
    for (source, _), labels, weights in common.padded_to_longest(data.train, 32, 0):
        assert (source.numpy() != 0).sum(axis=1).max() == source.shape[1]
        assert int(weights.numpy().sum(axis=1).max()) == labels.shape[1]


def test_padding_accounting():
    batch = ((tf.constant([[4, 5, 0, 0], [4, 0, 0, 0]]), tf.constant([[2, 6], [2, 0]])),
             tf.constant([[6, 3], [3, 0]]), tf.constant([[1.0, 1.0], [1.0, 0.0]]))
    stats = common.batch_stats(tf.data.Dataset.from_tensors(batch), 5)
    assert [(s.shape, s.source_tokens, s.target_tokens) for s in stats] == [((2, 4, 2), 3, 3)]
    assert common.padding_fractions(stats) == pytest.approx((5 / 8, 1 / 4))


@pytest.mark.slow
def test_train_speed_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "train.json"
    train_speed.main(["--preset", "tiny", "--batch-size", "32", "--train-size", "300",
                      "--validation-size", "20", "--warmup", "0", "--rounds", "1",
                      "--segment", "1", "--json", str(out)])
    assert "x tutorial" in capsys.readouterr().out
    rows = json.loads(out.read_text())["results"]
    names = [r["name"] for r in rows]
    assert names[0] == "tutorial" and names[1].startswith("ours") and names[2] == "ours + XLA"
    assert names[3:] == ([] if names[1] == "ours = v0.1" else ["ours v0.1"])
    assert rows[0]["speedup"] == 1.0
    for row in rows:
        assert row["target_tokens_per_s"] > 0 and np.isfinite(row["val_loss"])
        assert row["steps"] == 1 + 0 + 1 * 1
        assert 0 <= row["source_padding"] < 1
    assert rows[2]["target_padding"] > 0  # static shapes pad targets to T


@pytest.mark.slow
def test_pipeline_speed_runs_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline_speed, "CACHED_BATCHES", 4)
    out = tmp_path / "pipeline.json"
    pipeline_speed.main(["--preset", "tiny", "--batch-size", "32", "--train-size", "300",
                         "--warmup", "1", "--rounds", "1", "--segment", "2",
                         "--json", str(out)])
    assert "pipeline alone / model alone" in capsys.readouterr().out
    rates = json.loads(out.read_text())["rates"]
    assert len(rates) == 3 and all(rate > 0 for rate in rates.values())


def test_architecture_ablations_are_config_overrides_each_run_once(data):
    args = train_speed.parse_args(["--preset", "tiny", "--ablations"])
    contenders, _ = train_speed.contenders_for(data, args)
    configs = [dataclasses.replace(data.config, **c.config_overrides)
               for c in contenders if c.architecture == "ours" and c.pipeline == "buckets"]
    assert len(configs) == len({repr(c) for c in configs})  # no architecture twice
    for name, overrides in train_speed.ARCHITECTURES:
        assert dataclasses.replace(data.config, **overrides) in configs, name
    everything = dict(train_speed.ARCHITECTURES)["v0.1 + all three"]
    assert everything == dict(norm_first=False, attention_initializer="glorot_uniform_per_head",
                              residual_dropout=False, feed_forward_dropout=False)


def test_only_keeps_the_tutorial_and_the_named_contenders(data):
    args = train_speed.parse_args(["--preset", "tiny", "--ablations",
                                   "--only", "v0.1 + post-LN,ours + XLA"])
    contenders, _ = train_speed.contenders_for(data, args)
    assert [c.name for c in contenders] == ["tutorial", "ours + XLA", "v0.1 + post-LN"]
    with pytest.raises(SystemExit, match="no contender named nope"):
        train_speed.contenders_for(data, train_speed.parse_args(["--only", "nope"]))


def test_bad_arguments_exit_with_one_line(capsys):
    with pytest.raises(SystemExit) as error:
        train_speed.parse_args(["--segment", "0"])
    assert error.value.code != 0
    assert "--segment must be positive" in capsys.readouterr().err


@pytest.mark.slow
def test_decode_speed_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "decode.json"
    decode_speed.main(["--preset", "tiny", "--source-length", "16", "--target-length", "8",
                       "--train-steps", "2", "--threads", "1", "--rounds", "2",
                       "--sentences", "1", "--verify-samples", "3",
                       "--work-dir", str(tmp_path / "work"), "--json", str(out)])
    printed = capsys.readouterr().out
    assert "x vs a" in printed and "the floor" in printed
    report = json.loads(out.read_text())
    assert [row["recipe"] for row in report["setup"]["recipes"]] == list(RECIPES)
    (result,) = report["results"]
    rows = {row["name"]: row for row in result["rows"]}
    assert result["threads"] == 1 and result["rounds"] == 2
    assert result["raw"]["steps_per_sentence"] == 7  # T - 1: EOS does not stop a contender
    for mode in MODES:
        row = rows[f"c: bundle float32, {mode}"]
        assert row["ms_per_token"] > 0 and row["x_vs_keras"] > 0
        assert row["token_agreement"] == 1.0  # float32: the same tokens in every mode
    # The re-run contenders compute the same function as the bundle.
    assert rows["a: Keras re-run (tf.function)"]["token_agreement"] == 1.0
    assert rows["b: LiteRT re-run (1 signature)"]["token_agreement"] == 1.0
    assert result["floors"]["float32"]["floor_ms"] > 0
    assert len(report["goals"]) == 3 + 1 + 1


def test_decode_step_cost_counts_what_one_step_reads():
    config = preset("tiny", source_vocab_size=20, target_vocab_size=20).to_dict()
    from kit.models import Seq2SeqTransformer

    model = Seq2SeqTransformer(preset("tiny", source_vocab_size=20, target_vocab_size=20))
    model.build()
    weights = decode_speed.weight_counts(model)
    D, F, V, S, T = 32, 64, 20, 16, 12
    # Self-attention Q, K, V, O; cross-attention Q, O; feed-forward; output projection.
    assert weights["kernels"] == 4 * D * D + 2 * D * D + 2 * D * F + D * V
    # Biases of those, 3 layer norms, the output bias and one embedding row.
    assert weights["others"] == 4 * D + 2 * D + F + D + 3 * 2 * D + V + D
    cost = decode_speed.step_cost(config, weights)
    assert cost["cache_bytes"] == 4 * 1 * 2 * D * (T + S)
    assert cost["macs"] == 6 * D * D + 2 * T * D + 2 * S * D + 2 * D * F + D * V
    assert decode_speed.step_cost(config, weights, 1)["weight_bytes"] == \
        weights["kernels"] + 4 * weights["others"]


@pytest.mark.slow
def test_ct2_speed_runs_end_to_end(tmp_path, capsys):
    """Where ctranslate2 is installed (requirements-bench.txt): train, export, port,
    check, then one round of every contender."""
    pytest.importorskip("ctranslate2")
    from benchmarks import ct2_speed

    out = tmp_path / "ct2.json"
    ct2_speed.main(["--preset", "tiny", "--source-length", "16", "--target-length", "8",
                    "--train-steps", "2", "--rounds", "1", "--sentences", "2", "--batch", "4",
                    "--verify-samples", "8", "--check-sources", "8",
                    "--work-dir", str(tmp_path / "work"), "--json", str(out)])
    printed = capsys.readouterr().out
    assert "float32 b1 (kit / ct2 float32)" in printed and "goals:" in printed
    report = json.loads(out.read_text())
    assert report["setup"]["ct2_checks"]["float32"]["total"] == 8
    times = report["summary"]["ms_per_token"]
    assert {"kit float32 b1", "kit dynamic_int8 b4", "ct2 int8 b4"} <= set(times)
    assert "kit int8 b4" not in times  # int8 bundles hold the (1, S) pair only
    assert all(value > 0 for value in times.values())


@pytest.mark.slow
def test_c_speed_runs_end_to_end(tmp_path, capsys):
    """Train, export float32, build examples/c, check the ids, one round."""
    import shutil

    if shutil.which("cmake") is None:
        pytest.skip("building examples/c needs CMake")
    from benchmarks import c_speed

    out = tmp_path / "c.json"
    c_speed.main(["--preset", "tiny", "--source-length", "16", "--target-length", "8",
                  "--train-steps", "2", "--rounds", "1", "--recipes", "float32",
                  "--verify-samples", "8", "--texts", "64", "--work-dir", str(tmp_path / "work"),
                  "--json", str(out)])
    printed = capsys.readouterr().out
    assert "goal: C time per token" in printed
    report = json.loads(out.read_text())
    check = report["worker"]["checks"]["float32"]
    assert check["equal"] == check["total"] > 0 and check["tokens"] > 0
    times = report["summary"]["ms_per_token"]
    assert set(times) == {"python float32", "c float32"}
    assert all(value > 0 for value in times.values())


# The JAX smoke tests check that a script runs, not its speed: XLA's backend
# optimization level 0 compiles faster (tests/training/test_jax_backend.py does the same).
FAST_XLA_COMPILES = "--xla_backend_optimization_level=0"


@pytest.mark.slow
def test_jax_gpu_check_runs_without_tensorflow(tmp_path):
    """The GPU check on JAX's CPU, in a process where `import tensorflow` fails, as on a
    GPU machine with JAX and no TensorFlow: every row runs or records why not."""
    import subprocess
    import sys

    out = tmp_path / "gpu.json"
    code = ("import runpy, sys\n"
            "sys.modules['tensorflow'] = None  # import tensorflow now raises ImportError\n"
            "sys.argv = ['jax_gpu_check', '--sizes', 'tiny', '--steps', '2', '--warmup', '1',"
            " '--batch-size', '8', '--policies', 'mixed_float16',"
            f" '--json', {str(out)!r}]\n"
            "runpy.run_module('benchmarks.jax_gpu_check', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "KERAS_BACKEND": "jax",
                                            "XLA_FLAGS": FAST_XLA_COMPILES},
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tensorflow_imported"] is False
    rows = {(r["policy"], r["architecture"]): r for r in report["results"]}
    assert len(rows) == 2  # mixed_bfloat16 on JAX: tests/training/test_jax_backend.py
    for (policy, architecture), row in rows.items():
        if "error" in row:  # Keras's attention in float16 on JAX's CPU: GPU only
            assert (policy, architecture) == ("mixed_float16", "tutorial"), row
            continue
        assert row["target_tokens_per_s"] > 0 and np.isfinite(row["val_loss"]), row


@pytest.mark.slow
def test_train_speed_runs_on_jax(tmp_path, capsys, monkeypatch):
    """`--backend jax`: the script runs itself again on JAX, fed by the same tf.data."""
    monkeypatch.setenv("XLA_FLAGS", FAST_XLA_COMPILES)  # for the JAX child it starts
    out = tmp_path / "train.json"
    train_speed.main(["--preset", "tiny", "--batch-size", "32", "--train-size", "300",
                      "--validation-size", "20", "--warmup", "0", "--rounds", "1",
                      "--segment", "2", "--only", "ours", "--backend", "jax",
                      "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["args"]["backend"] == "jax"
    for row in report["results"]:
        assert row["target_tokens_per_s"] > 0 and np.isfinite(row["val_loss"])
