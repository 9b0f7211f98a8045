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
    LOGITS,
    POSITION,
    SIGNATURES,
    SOURCE_IDS,
    SOURCE_MASK,
    TOKEN_IDS,
    encode_outputs,
    layer_cache_names,
    layer_cross_names,
    variant_signatures,
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
    variants: list = None  # its (batch, source length) signature pairs; None: (1, S)


def decode_step_inputs(config, batch=1, source_length=None):
    """The inputs of the `decode_step` signature that decodes `batch` rows of sources
    of `source_length` tokens (default: the model's S), in order: name -> (shape,
    dtype name).

    Keys and values are stored (B, H, L, Dh), L being S for the cross-attention's and T
    for the self-attention cache: a head's slots contiguous, read with no transpose
    (`kit.layers._attention_core.attend_cached`).
    Every row is at the same `position`.
    """
    B, S = batch, source_length or config.max_source_length
    T, H, Dh = config.max_target_length, config.num_heads, config.head_dim
    inputs = {TOKEN_IDS: ((B, 1), "int32"), POSITION: ((1,), "int32"),
              SOURCE_MASK: ((B, S), "float32")}
    for i in range(config.num_decoder_layers):
        key, value = layer_cross_names(i)
        inputs[key] = inputs[value] = ((B, H, S, Dh), "float32")
    for i in range(config.num_decoder_layers):
        key, value = layer_cache_names(i)
        inputs[key] = inputs[value] = ((B, H, T, Dh), "float32")
    return inputs


# 32 for servers and `evaluate`; 4 for beam search's rows (beams of 4 through a batch-4
# pair took 15.6 ms a source against 34 ms through per-beam runners and 107 ms through
# the batch-32 pair, base preset, 1 thread; it adds 2.5% to the float32 file).
DEFAULT_BATCH_SIZES = (1, 4, 32)


def choose_variants(config, batch_sizes=DEFAULT_BATCH_SIZES, source_lengths=None):
    """The (batch, source length) signature pairs a file gets: every batch size with
    every source length. S is always among the lengths, and (1, S) first among the
    pairs. `source_lengths` None: S only. A shorter bucket was measured not worth its
    file size by default: on the `base` preset (S 40, sources of 14 tokens on average),
    a bucket of 24 made a float32 token 0.7-1.6% faster, and each pair adds ~100 KB
    (5% of a dynamic_int8 file); buckets pay where S is far above the usual source.

    Raises:
        ValueError for a batch size below 1 or a source length outside [1, S].
    """
    S = config.max_source_length
    source_lengths = {S, *(source_lengths or ())}  # every batch decodes any source
    for length in source_lengths:
        if not 1 <= length <= S:
            raise ValueError(f"a source length must lie in [1, S={S}]. Received: {length}")
    for batch in batch_sizes:
        if batch < 1:
            raise ValueError(f"a batch size must be at least 1. Received: {batch}")
    pairs = [(1, S)] + [(batch, length) for batch in sorted(set(batch_sizes))
                        for length in sorted(set(source_lengths), reverse=True)]
    return list(dict.fromkeys(pairs))


def signature_names(config, variants):
    """Every signature of a file with `variants` ((batch, source_length) pairs), in the
    order the converter is given them: each variant's encode, then its decode_step."""
    return [name for batch, length in variants
            for name in variant_signatures(batch, length, config.max_source_length)]


def write_saved_model(model, directory, variants=((1, None),)):
    """Writes `model` as a SavedModel with one `encode` and one `decode_step` signature
    per variant, a (batch B, source length S') pair; S' None is the model's S.

        encode(source_ids (B, S') int32)
            -> source_mask (B, S') float32; cross_key_i (B, H, S', Dh) and cross_value_i
               (B, H, S', Dh) float32 for every decoder layer i
        decode_step(token_ids (B, 1) int32, position (1,) int32, source_mask,
                    cross_key_i, cross_value_i, self_key_i (B, H, T, Dh),
                    self_value_i (B, H, T, Dh))
            -> logits (B, V) float32; self_key_i, self_value_i float32

    The (1, S) pair is named `encode` and `decode_step`, the others by their shape
    (`kit.runtime.signatures.variant_signatures`); the converter keeps one copy of
    the weights for all of them. Each `self_*` output is the output of its own
    DYNAMIC_UPDATE_SLICE, with the same name as the input it updates, so a runtime can
    bind one buffer to both and the cache is updated in place. `position` is (1,), not
    a scalar, so that every input has a batch axis; every row of a batch is at the
    same position.
    """
    import keras
    import tensorflow as tf

    c = model.config
    archive = keras.export.ExportArchive()
    archive.track(model)
    for batch, length in variants:
        length = length or c.max_source_length
        inputs = decode_step_inputs(c, batch, length)
        encode_name, decode_name = variant_signatures(batch, length, c.max_source_length)

        archive.add_endpoint(encode_name, model.encode, input_signature=[
            tf.TensorSpec((batch, length), tf.int32, name=SOURCE_IDS)])
        archive.add_endpoint(decode_name, _decode_step_function(model, tuple(inputs)),
                             input_signature=[
            tf.TensorSpec(shape, dtype, name=name) for name, (shape, dtype) in inputs.items()])
    archive.write_out(str(directory), verbose=False)


def _decode_step_function(model, names):
    """`model.decode_step` over positional tensors in the order of `names` (the
    signature's inputs), returning a dict of the signature's outputs."""
    encoded_names = encode_outputs(model.config.num_decoder_layers)
    cache_names = model.cache_names()

    def decode_step(*tensors):
        given = dict(zip(names, tensors))
        logits, cache = model.decode_step(given[TOKEN_IDS], given[POSITION][0],
                                          {name: given[name] for name in cache_names},
                                          {name: given[name] for name in encoded_names})
        return {LOGITS: logits, **cache}

    return decode_step


def convert(saved_model_dir, recipe, representative_dataset=None, signatures=SIGNATURES):
    """Converts the SavedModel to a .tflite flatbuffer (bytes) under `recipe`.

    Raises ExportError with one line naming the unsupported op(s) if the graph needs
    anything outside the builtin op set (a Flex op), or whatever else failed.
    """
    import tensorflow as tf

    if recipe not in RECIPES:
        raise ExportError(f"unknown recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir),
                                                         signature_keys=list(signatures))
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
