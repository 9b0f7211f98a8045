"""The kit on Keras's JAX backend: the layer and model tests, training fed by the same
tf.data pipeline, and a JAX-trained run exported through TensorFlow with the same
tokens. Each JAX part runs in a child process (a process has one Keras backend)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The children check results, not speed: XLA's backend optimization level 0 compiles
# faster (the training test, mostly compilation, went from 84 s to 50 s here; and to
# 36 s with fewer batch shapes, below).
JAX = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
       "XLA_FLAGS": "--xla_backend_optimization_level=0"}
# The tests whose subject is a layer or the model: keras.ops only, so backend-free. Left
# out on JAX, to keep the suite under 15 minutes: the v0.1 file format (a file, not the
# math), the layers' `test_layer_contract` (Keras's generic layer checks: config and
# serialization round trips, built shapes; 20 s on JAX) but for the self-attention's, and
# two slow model tests whose property others check on JAX too (greedy decoding against
# full passes: cached decoding equals one full pass; the logits' shape and dtype: the
# mixed-precision tests).
LAYER_AND_MODEL_TESTS = ("tests/kit/layers", "tests/kit/models/test_seq2seq_transformer.py")
SELECTED = "not test_layer_contract or test_self_attention"
LEFT_OUT = ("tests/kit/models/test_seq2seq_transformer.py::"
            "test_greedy_decode_matches_argmax_of_full_passes",
            "tests/kit/models/test_seq2seq_transformer.py::test_logits_shape_and_dtype")


def _child(args, env=JAX, timeout=900):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_the_layer_and_model_tests_pass_on_jax():
    """None is backend-specific: every one runs on JAX as on TensorFlow (CPU)."""
    done = _child(["-c", "import sys, keras, pytest\n"
                         "assert keras.backend.backend() == 'jax', keras.backend.backend()\n"
                         "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
                         f"'-k', {SELECTED!r}, "
                         f"*{[a for t in LEFT_OUT for a in ('--deselect', t)]!r}, "
                         f"*{list(LAYER_AND_MODEL_TESTS)!r}]))"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, \
        summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 100, summary


_DECODE_ON_JAX = """
import json, sys
import keras
import numpy as np
assert keras.backend.backend() == "jax"
from export.load import load_run
from kit.tokenizers import BOS_ID, EOS_ID, source_ids
from training.run_dir import TEST_SAMPLE, read_pairs, read_run

run = sys.argv[1]
loaded = load_run(read_run(run))
S, T = loaded.config.max_source_length, loaded.config.max_target_length
pairs = read_pairs(f"{run}/{TEST_SAMPLE}")[:int(sys.argv[2])]
ids = np.array([source_ids(loaded.tokenizers.source, s, S) for s, _ in pairs], np.int32)
rows = loaded.model.greedy_decode(ids, BOS_ID, EOS_ID, T - 1)
out = []
for row in np.asarray(rows).tolist():
    out.append(row[:row.index(EOS_ID) + 1] if EOS_ID in row else row)
print(json.dumps({"sources": [s for s, _ in pairs], "ids": out}))

# mixed_bfloat16: three steps of the kit's compile call on a fresh tiny model.
from kit.models import Seq2SeqTransformer, preset
from training.losses import compile_for_training
from training.options import TrainOptions

keras.mixed_precision.set_global_policy("mixed_bfloat16")
config = preset("tiny", source_vocab_size=20, target_vocab_size=20)
model = Seq2SeqTransformer(config)
compile_for_training(model, TrainOptions(data="default", out="unused"), config)
rng = np.random.default_rng(0)
source = rng.integers(4, 20, (8, config.max_source_length)).astype("int32")
target = rng.integers(4, 20, (8, config.max_target_length + 1)).astype("int32")
losses = [model.train_on_batch((source, target[:, :-1]), target[:, 1:])[0]
          for _ in range(3)]
assert all(np.isfinite(losses)), losses
assert model.compute_dtype == "bfloat16" and model.variable_dtype == "float32"
logits = model((source, target[:, :-1]), training=False)
assert str(logits.dtype) == "float32", logits.dtype
"""


@pytest.mark.slow
def test_training_on_jax_exports_through_tensorflow_with_the_same_tokens(tmp_path):
    """`KERAS_BACKEND=jax python -m kit train` (mixed_float16, so loss scaling runs too)
    through the tf.data pipeline; its model, decoded by Keras on JAX, and its float32
    bundle, exported here on TensorFlow, give the same ids on held-out sources."""
    from export.cli import export_run
    from kit.runtime import Bundle

    run = tmp_path / "run"
    done = _child(["-m", "kit", "train", "--data", "default", "--out", str(run),
                   "--preset", "tiny", "--epochs", "1", "--limit", "300",
                   # S 16 cuts a quarter of the sources, and leaves 3 batch shapes
                   # (6 at S 44): each is a JAX compilation, most of this test's time.
                   "--max-source-length", "16", "--max-target-length", "12",
                   "--precision", "mixed_float16", "--eval-samples", "4",
                   "--beam-size", "1", "--average-checkpoints", "0", "--accept-trivial"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    record = json.loads((run / "run.json").read_text())
    assert record["backend"] == "jax" and record["precision"] == "mixed_float16"
    assert record["distribution"]["strategy"] == "one_device"

    decoded = _child(["-c", _DECODE_ON_JAX, str(run), "24"])  # and a mixed_bfloat16 step
    assert decoded.returncode == 0, decoded.stderr[-3000:]
    on_jax = json.loads(decoded.stdout.strip().splitlines()[0])

    export_run(run, "float32", tmp_path / "bundle", samples=8, batch_sizes=(1,),
               progress=lambda message: None)
    bundle = Bundle.load(tmp_path / "bundle")
    exported = [[int(t) for t in bundle.greedy_ids(bundle.source_ids(s))]
                for s in on_jax["sources"]]
    assert exported == on_jax["ids"]


@pytest.mark.parametrize("args, env_extra, says", [
    (["--strategy", "mirrored"], {}, "--strategy mirrored uses tf.distribute"),
    (["--strategy", "multi_worker"], {"TF_CONFIG": json.dumps({
        "cluster": {"worker": ["localhost:1", "localhost:2"]},
        "task": {"type": "worker", "index": 0}})}, "--strategy multi_worker uses"),
    ([], {"TF_CONFIG": json.dumps({
        "cluster": {"worker": ["localhost:1", "localhost:2"]},
        "task": {"type": "worker", "index": 0}})}, "TF_CONFIG's several workers"),
])
def test_tf_distribute_is_refused_on_jax_in_one_line(args, env_extra, says, tmp_path):
    done = _child(["-m", "kit", "train", "--data", "default", "--out",
                   str(tmp_path / "run"), *args], env={**JAX, **env_extra}, timeout=300)
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines()
              if line.startswith("error")]
    assert len(errors) == 1 and says in errors[0], done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "model.keras").exists()
