"""kit/runtime: bundle.json matches the file, float32 decodes as Keras does, the two
decode loops agree, and the runtime core runs without TensorFlow or Keras."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kit.runtime import BUNDLE_JSON, TFLITE_FILE, Bundle, BundleError
from training.run_dir import TEST_SAMPLE, read_pairs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RECIPES = ("float32", "float16", "dynamic_int8", "int8")


@pytest.fixture(scope="module")
def keras_model(tiny_run):
    from export.load import load_run
    from training.run_dir import read_run

    return load_run(read_run(tiny_run))


@pytest.mark.parametrize("recipe", RECIPES)
def test_bundle_json_describes_the_file(tiny_bundles, tiny_run, recipe):
    """Names, shapes and dtypes in bundle.json are those of the file, read back here
    independently with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    out, _ = tiny_bundles
    spec = json.loads((out / recipe / BUNDLE_JSON).read_text())
    interpreter = Interpreter(model_path=str(out / recipe / TFLITE_FILE))
    for key in ("encode", "decode_step"):
        runner = interpreter.get_signature_runner(key)
        for side, details in (("inputs", runner.get_input_details()),
                              ("outputs", runner.get_output_details())):
            assert set(spec["signatures"][key][side]) == set(details)
            for name, detail in details.items():
                assert spec["signatures"][key][side][name] == {
                    "shape": detail["shape"].tolist(), "dtype": detail["dtype"].__name__}
    config = json.loads((tiny_run / "run.json").read_text())["config"]
    S, T = config["max_source_length"], config["max_target_length"]
    L, H = config["num_decoder_layers"], config["num_heads"]
    Dh = config["model_dim"] // H
    decode = spec["signatures"]["decode_step"]
    assert decode["inputs"]["self_cache"]["shape"] == [1, L, 2, T, H, Dh]
    assert decode["inputs"]["cross_cache"]["shape"] == [1, L, 2, S, H, Dh]
    assert decode["inputs"]["position"] == {"shape": [1], "dtype": "int32"}
    assert decode["outputs"]["logits"] == {"shape": [1, config["target_vocab_size"]],
                                           "dtype": "float32"}
    assert spec["signatures"]["encode"]["inputs"] == {
        "source_ids": {"shape": [1, S], "dtype": "int32"}}
    assert (spec["recipe"], spec["source_length"], spec["target_length"]) == (recipe, S, T)
    assert spec["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}


def test_float32_bundle_decodes_token_exact_with_keras(tiny_bundles, tiny_run, keras_model):
    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")
    model, tokenizer = keras_model.model, keras_model.tokenizer
    pairs = read_pairs(tiny_run / TEST_SAMPLE)[:32]
    sources = np.array([bundle.source_ids(s) for s, _ in pairs], np.int32)
    rows = model.greedy_decode(sources, tokenizer.bos_id, tokenizer.eos_id).tolist()
    correct = 0
    for (source_text, target), source, row in zip(pairs, sources, rows):
        want = row[:row.index(tokenizer.eos_id) + 1] if tokenizer.eos_id in row else row
        assert bundle.greedy_ids(source) == want
        correct += bundle.translate(source_text) == target
    assert correct >= 4, "the fixture model should decode some dates right"


def test_float32_step_logits_match_keras(tiny_bundles, keras_model):
    from keras import ops

    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")
    model = keras_model.model
    source = np.array([bundle.source_ids("Sun 29 Nov 2026")], np.int32)
    fed = [bundle.bos_id] + bundle.greedy_ids(source[0])[:-1]
    encoded = model.encode(source)
    cache = model.init_cache(1)
    want = []
    for position, token in enumerate(fed):
        logits, cache = model.decode_step(np.array([[token]], np.int32), position, cache, encoded)
        want.append(ops.convert_to_numpy(logits)[0])
    np.testing.assert_allclose(bundle.step_logits(source[0], fed), np.stack(want), atol=1e-4)


@pytest.mark.parametrize("recipe", RECIPES)
def test_direct_and_signature_runner_loops_agree(tiny_bundles, tiny_run, recipe):
    out, _ = tiny_bundles
    direct = Bundle.load(out / recipe)
    runner = Bundle.load(out / recipe, direct=False)
    for source, _ in read_pairs(tiny_run / TEST_SAMPLE)[:8]:
        ids = direct.source_ids(source)
        assert direct.greedy_ids(ids) == runner.greedy_ids(ids)
        fed = [direct.bos_id, 5, 6, 7]
        np.testing.assert_array_equal(direct.step_logits(ids, fed), runner.step_logits(ids, fed))


def test_greedy_ids_stops_at_the_cache_length(tiny_bundles):
    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")
    ids = bundle.greedy_ids(bundle.source_ids("1 Jan 2000"))
    assert 1 <= len(ids) <= bundle.target_length - 1
    assert bundle.eos_id not in ids[:-1]
    assert len(bundle.greedy_ids(bundle.source_ids("1 Jan 2000"), max_new_tokens=2)) <= 2


def test_bad_source_ids_are_refused(tiny_bundles):
    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")
    with pytest.raises(ValueError, match="S=44"):
        bundle.greedy_ids([5, 6, 7])
    with pytest.raises(ValueError, match="must lie in"):
        bundle.greedy_ids([10_000] * bundle.source_length)
    with pytest.raises(ValueError, match="max_new_tokens"):
        bundle.greedy_ids(bundle.source_ids("x"), max_new_tokens=bundle.target_length)


def test_bundle_errors_are_one_line(tiny_bundles, tmp_path):
    out, _ = tiny_bundles
    with pytest.raises(BundleError, match="not found"):
        Bundle.load(tmp_path / "nothing")
    with pytest.raises(BundleError, match="no bundle.json"):
        Bundle.load(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    spec = json.loads((out / "float32" / BUNDLE_JSON).read_text())
    (broken / BUNDLE_JSON).write_text(json.dumps(spec))
    (broken / "tokenizer.json").write_bytes((out / "float32" / "tokenizer.json").read_bytes())
    with pytest.raises(BundleError, match="missing model.tflite"):
        Bundle.load(broken)
    (broken / TFLITE_FILE).write_bytes((out / "float32" / TFLITE_FILE).read_bytes())
    # Consistent in itself (two decoder layers everywhere), but not the model's.
    signatures = spec["signatures"]
    for tensor in (signatures["encode"]["outputs"]["cross_cache"],
                   signatures["decode_step"]["inputs"]["cross_cache"],
                   signatures["decode_step"]["inputs"]["self_cache"],
                   signatures["decode_step"]["outputs"]["self_cache"]):
        tensor["shape"][1] = 2
    (broken / BUNDLE_JSON).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="does not match") as raised:
        Bundle.load(broken)
    assert "\n" not in str(raised.value)


def test_runtime_imports_neither_tensorflow_nor_keras(tiny_bundles):
    """In a fresh interpreter where importing tensorflow or keras raises, the runtime
    loads every bundle and decodes."""
    out, _ = tiny_bundles
    script = textwrap.dedent("""
        import sys

        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Blocked())
        from kit.runtime import Bundle
        for recipe in sys.argv[2:]:
            bundle = Bundle.load(sys.argv[1] + "/" + recipe)
            print(recipe, repr(bundle.translate("Sun 29 Nov 2026")))
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        assert not loaded, loaded
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script, str(out), *RECIPES],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ok"
