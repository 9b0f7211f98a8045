"""A float32 Keras model -> a LiteRT flatbuffer with the `encode` and `decode_step`
signatures, under one quantization recipe.

The route that keeps Keras 3 weights on this stack (TF 2.21, Keras 3.15): track the float32
model in a `keras.export.ExportArchive` with one endpoint per signature, write a
SavedModel, and convert that with `tf.lite.TFLiteConverter.from_saved_model` restricted
to builtin ops, so that an op the phone cannot run fails here.

Inputs and outputs stay float32 and int32 in every recipe, so one runtime serves all.
The int8 recipe's calibration and attention mask bias live in `export.int8`, which
builds on this module; reading a flatbuffer's ops in `export.flatbuffer`; reading the
run directory in `export.load`; converting a run under the recipes asked for in
`export.cli`.
"""

import re
import warnings
from dataclasses import dataclass

from kit.quiet import native_output_silenced
from kit.runtime.recipes import RECIPES
from kit.runtime.signatures import (
    DECODE_STEP,
    ENCODE,
    LOGITS,
    POSITION,
    SIGNATURES,
    SOURCE_IDS,
    SOURCE_MASK,
    TOKEN_IDS,
    encode_outputs,
    layer_cache_names,
    layer_cross_names,
)

from .errors import ExportError
from .flatbuffer import model_ops

# What each recipe of RECIPES does to the model; bundle.json repeats it for the device
# developer.
RECIPE_NOTES = {
    "float32": "no quantization",
    "float16": "float16 weights, float32 compute",
    "dynamic_int8": "int8 weights, one scale per tensor (matrices and embedding tables); "
                    "activations quantized on the fly in the matrix products; biases, "
                    "layer norm and everything else float32",
    "int8": "full integer: int8 weights and int8 activations with static ranges calibrated "
            "on training data (real encode inputs and recorded decode steps) in every op "
            "the converter quantizes: matrix products, attention, softmax, layer norm, "
            "embeddings; inputs and outputs float32 and int32 at the signature boundary, "
            "converted inside the file (QUANTIZE/DEQUANTIZE). `float_ops` lists what stays "
            "float32: ops without an int8 kernel (SIN, COS, CAST, layer norm's NEG) and "
            "the float32 KV cache's update (DYNAMIC_UPDATE_SLICE, which the converter "
            "does not quantize) with the ops that read it in float32",
}


@dataclass
class Exported:
    """One recipe's flatbuffer and what bundle.json and report.json say about it."""

    content: bytes
    config: object  # the TransformerConfig the file was converted from
    quantization: dict  # "summary" (RECIPE_NOTES), plus the recipe's chosen values


def decode_step_inputs(config):
    """The `decode_step` signature's inputs in order: name -> (shape, dtype name).

    Keys are stored (1, H, L, Dh) and values transposed, (1, H, Dh, L), L being S for
    the cross-attention's and T for the self-attention cache: the layout LiteRT's
    BATCH_MATMUL reads with no transpose (`kit.layers._attention_core.attend_cached`).
    """
    S, T, H, Dh = (config.max_source_length, config.max_target_length, config.num_heads,
                   config.head_dim)
    inputs = {TOKEN_IDS: ((1, 1), "int32"), POSITION: ((1,), "int32"),
              SOURCE_MASK: ((1, S), "float32")}
    for i in range(config.num_decoder_layers):
        key, value = layer_cross_names(i)
        inputs[key], inputs[value] = ((1, H, S, Dh), "float32"), ((1, H, Dh, S), "float32")
    for i in range(config.num_decoder_layers):
        key, value = layer_cache_names(i)
        inputs[key], inputs[value] = ((1, H, T, Dh), "float32"), ((1, H, Dh, T), "float32")
    return inputs


def write_saved_model(model, directory):
    """Writes `model` as a SavedModel with the two fixed-shape (batch 1) signatures.

        encode(source_ids (1, S) int32)
            -> source_mask (1, S) float32; cross_key_i, cross_value_i (1, S, H, Dh)
               float32 for every decoder layer i
        decode_step(token_ids (1, 1) int32, position (1,) int32, source_mask,
                    cross_key_i, cross_value_i, self_key_i, self_value_i (1, T, H, Dh))
            -> logits (1, V) float32; self_key_i, self_value_i (1, T, H, Dh) float32

    Each `self_*` output is the output of its own DYNAMIC_UPDATE_SLICE, with the same
    name as the input it updates, so a runtime can bind one buffer to both and the
    cache is updated in place. `position` is (1,), not a scalar, so that every input
    has a batch axis.
    """
    import keras
    import tensorflow as tf

    c = model.config
    names = list(decode_step_inputs(c))
    encoded_names = encode_outputs(c.num_decoder_layers)
    cache_names = model.cache_names()

    def encode(source_ids):
        return model.encode(source_ids)

    def decode_step(*tensors):
        inputs = dict(zip(names, tensors))
        encoded = {name: inputs[name] for name in encoded_names}
        logits, cache = model.decode_step(inputs[TOKEN_IDS], inputs[POSITION][0],
                                          {name: inputs[name] for name in cache_names},
                                          encoded)
        return {LOGITS: logits, **cache}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(ENCODE, encode, input_signature=[
        tf.TensorSpec((1, c.max_source_length), tf.int32, name=SOURCE_IDS)])
    archive.add_endpoint(DECODE_STEP, decode_step, input_signature=[
        tf.TensorSpec(shape, dtype, name=name)
        for name, (shape, dtype) in decode_step_inputs(c).items()])
    archive.write_out(str(directory), verbose=False)


def convert(saved_model_dir, recipe, representative_dataset=None):
    """Converts the SavedModel to a .tflite flatbuffer (bytes) under `recipe`.

    Raises ExportError with one line naming the unsupported op(s) if the graph needs
    anything outside the builtin op set (a Flex op), or whatever else failed.
    """
    import tensorflow as tf

    if recipe not in RECIPES:
        raise ExportError(f"unknown recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir),
                                                         signature_keys=list(SIGNATURES))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if recipe == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif recipe == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Private flag, on purpose: one scale per weight tensor instead of one per output
        # channel. Per channel, each of the small preset's ~2,900 channels costs a float
        # scale and an int64 zero point (always 0): 34 KB, a tenth of the file. Measured
        # on the small preset: 0.347x -> 0.315x of float32, still 100% token-exact, max
        # |dlogit| 0.07 -> 0.11. tests/export checks that the flag still takes effect.
        converter._experimental_disable_per_channel = True
    elif recipe == "int8":
        if representative_dataset is None:
            raise ExportError("the int8 recipe needs representative data")
        # Integer with float fallback: every op with an int8 kernel is quantized, the
        # rest stays float32 (see float_ops); inputs and outputs stay float32/int32.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
    try:
        with warnings.catch_warnings(), native_output_silenced((1, 2)):
            # The int8 calibrator runs tf.lite.Interpreter, which warns that it is deprecated.
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            content = converter.convert()
    except Exception as error:  # ConverterError and friends: one line, op names first
        raise ExportError(f"{recipe} conversion failed: {_conversion_reason(error)}") from None
    flex = sorted(op for op in model_ops(content) if op.startswith("Flex"))
    if flex:
        raise ExportError(f"{recipe} conversion produced Flex ops, which LiteRT's builtin "
                          f"interpreter cannot run: {', '.join(flex)}")
    return content


def _conversion_reason(error):
    """The op names in a converter error, or its first meaningful line."""
    text = str(error)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op", text)))
    flex = sorted(set(re.findall(r"\bFlex\w+", text)))
    if ops or flex:
        return "ops outside the LiteRT builtins: " + ", ".join(ops + flex)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    return lines[0] if lines else type(error).__name__
