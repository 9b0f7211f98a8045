"""export/convert.py: every recipe converts, builtin ops only, two signatures, and the
float32 rebuild of a mixed-precision run exports the same way."""

import numpy as np
import pytest

from export.convert import RECIPES, ExportError, convert, load_run, model_ops, write_saved_model
from export.runtime import MODEL_FILE, Bundle
from tests.export.conftest import make_run_dir

pytestmark = pytest.mark.slow


def _interpreter(content):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_converts_to_two_signatures_of_builtin_ops(tiny_bundles, recipe):
    out, _ = tiny_bundles
    content = (out / recipe / MODEL_FILE).read_bytes()
    ops = model_ops(content)
    assert not [op for op in ops if op.startswith("Flex")], ops
    assert "CUSTOM" not in ops and all(op.isupper() for op in ops), ops
    assert "DYNAMIC_UPDATE_SLICE" in ops  # the KV cache is written in the graph
    assert set(_interpreter(content).get_signature_list()) == {"encode", "decode_step"}


def test_recipes_shrink_the_file(tiny_bundles):
    _, report = tiny_bundles
    sizes = {row["recipe"]: row["file_bytes"] for row in report["recipes"]}
    assert sizes["float16"] < 0.8 * sizes["float32"]
    assert sizes["dynamic_int8"] < sizes["float16"]
    assert sizes["int8"] < 0.8 * sizes["float32"]


def test_quantized_recipes_still_decode(tiny_bundles):
    """A quantization that breaks the model (full integer did: 0% token-exact) shows here."""
    _, report = tiny_bundles
    rows = {row["recipe"]: row for row in report["recipes"]}
    for recipe in ("float16", "dynamic_int8", "int8"):
        assert rows[recipe]["token_exact"] >= 75.0, (recipe, rows[recipe]["token_exact"])


def test_int8_file_computes_in_int8(tiny_bundles):
    out, _ = tiny_bundles
    interpreter = _interpreter((out / "int8" / MODEL_FILE).read_bytes())
    dtypes = {np.dtype(detail["dtype"]).name for detail in interpreter.get_tensor_details()}
    assert "int8" in dtypes
    assert "QUANTIZE" in model_ops((out / "int8" / MODEL_FILE).read_bytes())


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


def test_unknown_recipe_is_refused(tmp_path):
    with pytest.raises(ExportError, match="unknown recipe 'int4'"):
        convert(tmp_path, "int4")


def test_mixed_precision_run_exports_in_float32(tmp_path):
    """A run trained under mixed_float16 is rebuilt in float32 with the same weights and
    converts to builtins only; the float32 file decodes as the float32 Keras rebuild."""
    run = tmp_path / "mixed"
    trained = make_run_dir(run, policy="mixed_float16", epochs=1, train_size=640)
    assert trained.dtype_policy.name == "mixed_float16"

    loaded = load_run(run)
    assert loaded.model.dtype_policy.name == "float32"
    assert loaded.info.precision == "mixed_float16"
    for rebuilt, original in zip(loaded.model.get_weights(), trained.get_weights()):
        assert rebuilt.dtype == np.float32
        np.testing.assert_array_equal(rebuilt, original)

    write_saved_model(loaded.model, tmp_path / "saved_model")
    content = convert(tmp_path / "saved_model", "float32")
    assert not [op for op in model_ops(content) if op.startswith("Flex")]

    from export.cli import _write_json, bundle_spec
    from export.runtime import BUNDLE_JSON, signature_specs

    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    (bundle_dir / MODEL_FILE).write_bytes(content)
    (bundle_dir / "tokenizer.json").write_bytes((run / "tokenizer.json").read_bytes())
    _write_json(bundle_dir / BUNDLE_JSON,
                bundle_spec("float32", loaded, signature_specs(_interpreter(content))))
    bundle = Bundle.load(bundle_dir)
    tokenizer = loaded.tokenizer
    sources = [bundle.source_ids(text) for text in ("12 May 2001", "3/4/99", "2020-01-31")]
    expected = loaded.model.greedy_decode(np.array(sources), tokenizer.bos_id,
                                          tokenizer.eos_id)
    for source, row in zip(sources, expected):
        row = row.tolist()
        want = row[:row.index(tokenizer.eos_id) + 1] if tokenizer.eos_id in row else row
        assert bundle.greedy_ids(source) == want
