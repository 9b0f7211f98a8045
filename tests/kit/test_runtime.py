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
from kit.runtime.recipes import RECIPES
from kit.runtime.steps import greedy_ids
from training.run_dir import TEST_SAMPLE, read_pairs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


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
    for i in range(L):
        for side in ("inputs", "outputs"):
            assert decode[side][f"self_key_{i}"]["shape"] == [1, H, T, Dh]
            assert decode[side][f"self_value_{i}"]["shape"] == [1, H, T, Dh]
        assert decode["inputs"][f"cross_key_{i}"]["shape"] == [1, H, S, Dh]
        assert decode["inputs"][f"cross_value_{i}"]["shape"] == [1, H, S, Dh]
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
    model, tokenizer = keras_model.model, keras_model.tokenizers.target
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
def test_the_three_decode_loops_agree(tiny_bundles, tiny_run, recipe):
    """Compiled (one buffer bound as each cache's input and output), direct (each cache
    copied output to input) and signature runners (everything copied): same tokens, and
    the same logits bit for bit."""
    out, _ = tiny_bundles
    loops = {mode: Bundle.load(out / recipe, mode=mode)
             for mode in ("compiled", "direct", "runner")}
    assert Bundle.load(out / recipe).mode == "compiled"  # the default where it exists
    for source, _ in read_pairs(tiny_run / TEST_SAMPLE)[:8]:
        ids = loops["direct"].source_ids(source)
        fed = [loops["direct"].bos_id, 5, 6, 7]
        # The (1, S) pair in each loop (greedy_ids would pick a shorter bucket in the
        # compiled loop only: see test_buckets_and_batches_decode_the_same_tokens).
        outputs = {mode: _greedy(bundle, bundle.steps, ids) for mode, bundle in loops.items()}
        assert outputs["compiled"] == outputs["direct"] == outputs["runner"]
        logits = {mode: bundle.step_logits(ids, fed) for mode, bundle in loops.items()}
        np.testing.assert_array_equal(logits["compiled"], logits["direct"])
        np.testing.assert_array_equal(logits["direct"], logits["runner"])


def _greedy(bundle, steps, ids):
    """Greedy ids of one source through `steps`, a loop over one signature pair."""
    return greedy_ids(steps, ids, bundle.bos_id, bundle.eos_id, bundle.target_length - 1)


@pytest.fixture(scope="module")
def bucket_bundles(tiny_run, tmp_path_factory):
    """The tiny run exported with a source-length bucket of 24 besides S 44, at batch 1
    and 4, in the two recipes whose pairs compute the same function (float16 converts
    as float32 does)."""
    from export.cli import export_run

    out = tmp_path_factory.mktemp("buckets")
    for recipe in ("float32", "dynamic_int8"):
        export_run(tiny_run, recipe, out / recipe, samples=8, batch_sizes=(1, 4),
                   source_lengths=(24,), progress=lambda message: None)
    return out


@pytest.mark.parametrize("recipe", ["float32", "dynamic_int8"])
def test_buckets_and_batches_decode_the_same_tokens(bucket_bundles, tiny_run, recipe):
    """A short source through its source-length bucket, and several sources through the
    batch pair, give the tokens of the (1, S) pair: the float recipes' pairs compute the
    same function of the same weights."""
    bundle = Bundle.load(bucket_bundles / recipe)
    S, half = bundle.source_length, 24
    assert {(v["batch"], v["source_length"]) for v in bundle.spec["variants"]} == {
        (batch, length) for batch in (1, 4) for length in (S, half)}
    sources = [s for s, _ in read_pairs(tiny_run / TEST_SAMPLE)[:40]] + ["1", "x" * 2 * S]
    ids = [bundle.source_ids(s) for s in sources]
    whole = [_greedy(bundle, bundle.steps, row) for row in ids]
    short = [row for row in ids if np.count_nonzero(row) <= half]
    assert short and len(short) < len(ids), "both buckets should be used"
    steps, cut = bundle.variants.single_for(short[0])
    assert cut.shape == (1, half) and steps is not bundle.steps
    assert [bundle.greedy_ids(row) for row in ids] == whole
    # 42 sources: ten groups of 4 rows, then one of 2 (in the batch-4 pair too).
    assert bundle.greedy_batch(ids) == whole
    assert bundle.greedy_batch(ids[:1]) == whole[:1]
    # The tensor-index loop (tflite-runtime's) runs batches through signature runners,
    # while one of which exists it may not invoke: 41 sources end with a lone one.
    direct = Bundle.load(bucket_bundles / recipe, mode="direct")
    assert direct.greedy_batch(ids[:41]) == whole[:41]
    assert [direct.greedy_ids(row) for row in ids[:3]] == whole[:3]
    beams = [[h.ids for h in direct.decode_ids(row, beam_size=3)] for row in ids[:3]]
    assert beams == [[h.ids for h in bundle.decode_ids(row, beam_size=3)] for row in ids[:3]]
    assert [direct.greedy_ids(row) for row in ids[:3]] == whole[:3]


def test_beam_search_on_the_bundle_equals_beam_search_on_keras(tiny_bundles, tiny_run,
                                                               keras_model):
    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")
    sources = [s for s, _ in read_pairs(tiny_run / TEST_SAMPLE)[:6]] + ["12 zz 19", "x"]
    ids = np.array([bundle.source_ids(s) for s in sources], np.int32)
    keras_beams = keras_model.model.beam_decode(ids, bundle.bos_id, bundle.eos_id,
                                                beam_size=3)
    for row, want in zip(ids, keras_beams):
        got = bundle.decode_ids(row, beam_size=3)
        assert [h.ids for h in got] == [h.ids for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want],
                                   atol=1e-4)
    # Beams of 3 ran as rows of the batch-4 pair; per-beam runners give the same.
    bundle.variants.batched, batched = [], bundle.variants.batched
    for row, want in zip(ids, keras_beams):
        assert [h.ids for h in bundle.decode_ids(row, beam_size=3)] == [h.ids for h in want]
    bundle.variants.batched = batched
    # A beam of one is the greedy output.
    for row in ids:
        [only] = bundle.decode_ids(row, beam_size=1)
        assert only.ids == bundle.greedy_ids(row)


def test_sampling_is_seeded_and_top_k_one_is_greedy(tiny_bundles):
    from kit.decoding import TopK, TopP

    out, _ = tiny_bundles
    bundle = Bundle.load(out / "float32")
    source = bundle.source_ids("3rd of march 1999")
    greedy = bundle.greedy_ids(source)
    assert bundle.decode_ids(source, sampler=TopK(1, seed=0))[0].ids == greedy
    draws = [bundle.decode_ids(source, sampler=TopP(1.0, temperature=3.0, seed=s))[0].ids
             for s in range(6)]
    assert draws == [bundle.decode_ids(source, sampler=TopP(1.0, temperature=3.0,
                                                            seed=s))[0].ids for s in range(6)]
    assert len({tuple(d) for d in draws}) > 1  # hot sampling does vary with the seed
    with pytest.raises(ValueError, match="one of beam_size"):
        bundle.decode_ids(source, beam_size=2, sampler=TopK(2))


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
    for name in ("source_tokenizer.json", "target_tokenizer.json", "source_vocab.txt",
                 "target_vocab.txt", "bundle.txt"):
        (broken / name).write_bytes((out / "float32" / name).read_bytes())
    with pytest.raises(BundleError, match="missing model.tflite"):
        Bundle.load(broken)
    (broken / TFLITE_FILE).write_bytes((out / "float32" / TFLITE_FILE).read_bytes())
    # Consistent in itself (two heads everywhere), but not the model's.
    signatures = spec["signatures"]
    for key in signatures:  # every signature pair
        for side in ("inputs", "outputs"):
            for name, tensor in signatures[key][side].items():
                if name.startswith(("cross_", "self_")):
                    tensor["shape"][1] = 2  # H
    (broken / BUNDLE_JSON).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="does not match") as raised:
        Bundle.load(broken)
    # One short line naming the first difference (it printed every signature).
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 400
    assert "signatures.decode_step.inputs.cross_key_0.shape is [1, " in str(raised.value)


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
