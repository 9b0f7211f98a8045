"""export/convert.py: every recipe converts, builtin ops only, its signature pairs; int8 is
full integer with a measured attention mask bias; dynamic_int8 has one scale per weight
tensor; the float32 rebuild of a mixed-precision run exports the same way."""

import json

import numpy as np
import pytest

from export.convert import RECIPE_NOTES, convert, write_saved_model
from export.errors import ExportError
from export.flatbuffer import float_ops, model_ops, op_tensor_types
from export.int8 import attention_score_stats, int8_mask_value
from export.load import load_run
from kit.runtime import BUNDLE_JSON, TFLITE_FILE, Bundle
from kit.runtime.recipes import CHECKED_ON, RECIPES
from tests.conftest import make_run_dir
from training.run_dir import read_run

pytestmark = pytest.mark.slow


def _interpreter(content):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_converts_to_its_signature_pairs_of_builtin_ops(tiny_bundles, recipe):
    out, _ = tiny_bundles
    content = (out / recipe / TFLITE_FILE).read_bytes()
    ops = model_ops(content)
    assert not [op for op in ops if op.startswith("Flex")], ops
    assert "CUSTOM" not in ops and all(op.isupper() for op in ops), ops
    assert "DYNAMIC_UPDATE_SLICE" in ops  # the KV cache is written in the graph
    spec = json.loads((out / recipe / BUNDLE_JSON).read_text())
    pairs = {(v["batch"], v["source_length"]): (v["encode"], v["decode_step"])
             for v in spec["variants"]}
    S = spec["source_length"]
    # The defaults: batch 1, 4 and 32 at S; int8 the (1, S) pair only.
    assert set(pairs) == ({(1, S)} if recipe == "int8" else {(1, S), (4, S), (32, S)})
    assert pairs[1, S] == ("encode", "decode_step")
    assert set(_interpreter(content).get_signature_list()) == {
        name for pair in pairs.values() for name in pair}


def test_recipes_shrink_the_file(tiny_bundles):
    _, report = tiny_bundles
    sizes = {row["recipe"]: row["file_bytes"] for row in report["recipes"]}
    # Three signature pairs of graph dilute the tiny model's halved weights (0.84x here;
    # 0.51x on the base preset).
    assert sizes["float16"] < 0.9 * sizes["float32"]
    assert sizes["dynamic_int8"] < sizes["float16"]
    # int8 holds the (1, S) pair only, float32 three (batch 1, 4, 32): on this tiny
    # model each pair's graph outweighs the weights int8 saves.
    assert sizes["int8"] < sizes["float32"]


def test_quantized_recipes_still_decode(tiny_bundles):
    """A quantization that breaks the model shows here (full integer with kit's -1e4 mask
    bias did: 0% token-exact)."""
    _, report = tiny_bundles
    rows = {row["recipe"]: row for row in report["recipes"]}
    for recipe in ("float16", "dynamic_int8", "int8"):
        assert rows[recipe]["token_exact"] >= 75.0, (recipe, rows[recipe]["token_exact"])


def test_int8_is_full_integer(tiny_bundles):
    """The matrix products, attention, softmax, layer norm and embeddings compute in int8
    and nothing else; bundle.json lists exactly the ops left in float32."""
    out, _ = tiny_bundles
    content = (out / "int8" / TFLITE_FILE).read_bytes()
    types = op_tensor_types(content)
    for op in ("FULLY_CONNECTED", "SOFTMAX", "GATHER", "MEAN", "SQUARED_DIFFERENCE", "RSQRT",
               "ADD", "MUL"):
        assert op in types, op
        assert not [key for key in types[op] if "float32" in key], (op, types[op])
        assert any(key.endswith("-> (int8)") for key in types[op]), (op, types[op])
    assert "(int8,int8) -> (int8)" in types["BATCH_MATMUL"]  # attention: Q K^T, weights V
    spec = json.loads((out / "int8" / BUNDLE_JSON).read_text())
    assert spec["quantization"]["float_ops"] == float_ops(content)
    assert "SOFTMAX" not in spec["quantization"]["float_ops"]
    # The boundary stays float32 and int32: one runtime for every recipe.
    for signature in spec["signatures"].values():
        for io in signature.values():
            assert {tensor["dtype"] for tensor in io.values()} <= {"float32", "int32"}


def test_int8_mask_bias_is_measured_and_recorded(tiny_bundles, tiny_run):
    out, report = tiny_bundles
    spec = json.loads((out / "int8" / BUNDLE_JSON).read_text())
    quantization = spec["quantization"]
    stats = quantization["attention_scores"]
    run_config = json.loads((tiny_run / "run.json").read_text())["config"]
    run_mask = run_config.get("attention_mask_value", -1e4)
    assert stats["rows"] > 0 and stats["max_real_spread"] > 0
    assert stats["run_mask_value"] == run_mask
    assert quantization["attention_mask_value"] == int8_mask_value(stats, run_mask)
    assert -100 <= quantization["attention_mask_value"] < 0
    # The file's config is the rebuild's; the other recipes keep the run's.
    assert spec["model"]["attention_mask_value"] == quantization["attention_mask_value"]
    assert json.loads((out / "float32" / BUNDLE_JSON).read_text())[
        "model"]["attention_mask_value"] == run_mask
    rows = {row["recipe"]: row for row in report["recipes"]}
    assert rows["int8"]["quantization"] == quantization


@pytest.mark.parametrize("lead, run_mask, expected", [
    (13.02, -1e4, -30.0),  # the small preset's measured lead: 28.02 rounds to 30
    (0.0, -1e4, -15.0),
    (0.1, -1e4, -20.0),
    (-4.0, -1e4, -15.0),  # masked keys below every real one: the margin alone
    (None, -1e4, -15.0),  # no row had a masked key
    (13.02, -20.0, -20.0),  # never beyond the run's own bias
])
def test_int8_mask_value(lead, run_mask, expected):
    stats = {"rows": 1, "max_masked_lead": lead, "max_real_spread": 1.0}
    assert int8_mask_value(stats, run_mask) == expected


def test_attention_score_stats_reads_the_softmax_inputs(tmp_path):
    """Hand-computed: encode's scores for source [5, 6, 0, 0] (keys 2, 3 masked, query
    rows 2, 3 left out) give the largest lead, the decode row the largest spread."""
    import tensorflow as tf

    encode_scores = tf.constant([[1.0, 3.0, 11.0, -2.0],   # lead 11 - 3 = 8, spread 2
                                 [0.0, -1.0, 2.0, 2.0],    # lead 2, spread 1
                                 [99.0, 0.0, 0.0, 0.0],    # padding queries: left out
                                 [0.0, 99.0, 0.0, 0.0]])

    class Attention(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.int32, name="source_ids")])
        def encode(self, source_ids):
            bias = (1.0 - tf.cast(source_ids != 0, tf.float32)) * -1e4
            return {"weights": tf.nn.softmax(encode_scores[None, None] + bias[:, None, None])}

        @tf.function(input_signature=[tf.TensorSpec((1, 1, 1, 3), tf.float32, name="scores")])
        def decode_step(self, scores):
            return {"weights": tf.nn.softmax(scores + tf.constant([0.0, 0.0, -1e4]))}

    module = Attention()
    tf.saved_model.save(module, str(tmp_path), signatures={
        "encode": module.encode, "decode_step": module.decode_step})
    content = convert(tmp_path, "float32")
    stats = attention_score_stats(
        content, {"source_ids": np.array([[5, 6, 0, 0]], np.int32)},
        {"scores": np.array([[[[1.0, 5.0, 11.0]]]], np.float32)}, -1e4)  # lead 6, spread 4
    assert stats["rows"] == 3
    assert stats["max_masked_lead"] == pytest.approx(8.0, abs=1e-2)
    assert stats["max_real_spread"] == pytest.approx(4.0, abs=1e-2)


def test_dynamic_int8_has_one_scale_per_weight_tensor(tiny_bundles):
    """The converter's private `_experimental_disable_per_channel` still takes effect:
    every int8 weight (matrices and embedding tables) has a single scale."""
    from ai_edge_litert import schema_py_generated as schema

    out, report = tiny_bundles
    content = (out / "dynamic_int8" / TFLITE_FILE).read_bytes()
    model = schema.Model.GetRootAs(content, 0)
    weights = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            if tensor.Type() == schema.TensorType.INT8:
                weights += 1
                assert tensor.Quantization().ScaleLength() == 1, tensor.Name()
    assert weights > 0
    assert "(float32,int8,float32) -> (float32)" in op_tensor_types(content)["FULLY_CONNECTED"]
    # The source embedding is int8; the target one of the fixture (15 ids x 32) is
    # under the 1,024 elements the converter quantizes, and stays float32.
    assert "(int8,int32) -> (int8)" in op_tensor_types(content)["GATHER"]
    assert set(op_tensor_types(content)["GATHER"]) <= {"(int8,int32) -> (int8)",
                                                        "(float32,int32) -> (float32)"}
    row = {row["recipe"]: row for row in report["recipes"]}["dynamic_int8"]
    assert row["size_ratio"] == row["file_bytes"] / (out / "float32" / TFLITE_FILE).stat().st_size


def test_model_ops_sees_flex_ops_in_a_file():
    """The check that guards every export must be able to see a Flex op when one is there."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 3, 3), tf.float32)])
    def f(x):
        return tf.linalg.det(x)  # MatrixDeterminant: a Flex op, no LiteRT builtin

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    assert any(op.startswith("Flex") for op in model_ops(converter.convert()))


def test_op_outside_builtins_fails_with_one_line_naming_it(tmp_path):
    import tensorflow as tf

    class Unsupported(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 3, 3), tf.float32, name="x")])
        def encode(self, x):
            return {"y": tf.linalg.det(x)}

        @tf.function(input_signature=[tf.TensorSpec((1, 3, 3), tf.float32, name="x")])
        def decode_step(self, x):
            return {"y": x + 1.0}

    module = Unsupported()
    tf.saved_model.save(module, str(tmp_path), signatures={
        "encode": module.encode, "decode_step": module.decode_step})
    with pytest.raises(ExportError) as raised:
        convert(tmp_path, "float32")
    message = str(raised.value)
    assert "\n" not in message
    assert "tf.MatrixDeterminant" in message, message


def test_every_recipe_has_its_notes():
    assert list(RECIPE_NOTES) == list(CHECKED_ON) == list(RECIPES)


def test_unknown_recipe_is_refused(tmp_path):
    with pytest.raises(ExportError, match="unknown recipe 'int4'"):
        convert(tmp_path, "int4")


def test_mixed_precision_run_exports_in_float32(tmp_path):
    """A run trained under mixed_float16 is rebuilt in float32 with the same weights and
    converts to builtins only; the float32 file decodes as the float32 Keras rebuild."""
    run = tmp_path / "mixed"
    trained = make_run_dir(run, policy="mixed_float16", epochs=1, train_size=640)
    assert trained.dtype_policy.name == "mixed_float16"

    loaded = load_run(read_run(run))
    assert loaded.model.dtype_policy.name == "float32"
    assert loaded.info.precision == "mixed_float16"
    for rebuilt, original in zip(loaded.model.get_weights(), trained.get_weights()):
        assert rebuilt.dtype == np.float32
        np.testing.assert_array_equal(rebuilt, original)

    write_saved_model(loaded.model, tmp_path / "saved_model")
    content = convert(tmp_path / "saved_model", "float32")
    assert not [op for op in model_ops(content) if op.startswith("Flex")]

    from kit.runtime import signature_specs
    from kit.runtime.bundle_format import bundle_spec, write_bundle_json
    from training.run_dir import save_tokenizers

    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    (bundle_dir / TFLITE_FILE).write_bytes(content)
    save_tokenizers(bundle_dir, loaded.tokenizers)
    write_bundle_json(bundle_dir, bundle_spec(
        "float32", loaded.config.to_dict(), loaded.tokenizers,
        signature_specs(_interpreter(content)), {"summary": RECIPE_NOTES["float32"]},
        source_run={"path": str(run)}), loaded.tokenizers)
    bundle = Bundle.load(bundle_dir)
    tokenizer = loaded.tokenizers.target
    sources = [bundle.source_ids(text) for text in ("12 May 2001", "3/4/99", "2020-01-31")]
    expected = loaded.model.greedy_decode(np.array(sources), tokenizer.bos_id,
                                          tokenizer.eos_id)
    for source, row in zip(sources, expected):
        row = row.tolist()
        want = row[:row.index(tokenizer.eos_id) + 1] if tokenizer.eos_id in row else row
        assert bundle.greedy_ids(source) == want
