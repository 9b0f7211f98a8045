"""A run directory -> a LiteRT flatbuffer with the `encode` and `decode_step` signatures.

The route is the one platform-notes.md found to keep Keras 3 weights: rebuild the model
in float32, track it in a `keras.export.ExportArchive` with one endpoint per signature,
write a SavedModel, and convert that with `tf.lite.TFLiteConverter.from_saved_model`
restricted to builtin ops, so that an op the phone cannot run fails here.

Inputs and outputs stay float32 and int32 in every recipe, so one runtime serves all.
"""

import contextlib
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.runtime import source_ids_for

# What each recipe does to the model; bundle.json repeats it for the device developer.
RECIPE_NOTES = {
    "float32": "no quantization",
    "float16": "float16 weights, float32 compute",
    "dynamic_int8": "int8 weights (per channel); activations quantized on the fly in the "
                    "matrix products; everything else float32",
    "int8": "int8 weights and int8 activations with static ranges calibrated on training "
            "data (real encode inputs and recorded decode steps) in every FULLY_CONNECTED "
            "layer; attention products, softmax, layer norm, masks and embeddings float32 "
            "(full integer quantization of those breaks decoding)",
}
RECIPES = tuple(RECIPE_NOTES)
SIGNATURES = ("encode", "decode_step")


class ExportError(RuntimeError):
    """Export cannot go on; the message is one line for the user."""


@dataclass
class LoadedRun:
    """A finished run, with its model rebuilt in float32."""

    info: object  # training.run_dir.RunInfo
    config: object  # kit.models.TransformerConfig
    model: object  # kit.models.Seq2SeqTransformer, float32 policy
    tokenizer: object  # kit.tokenizer.CharTokenizer


def load_run(run_dir):
    """Reads a finished run and rebuilds its model in float32 with the trained weights.

    A model trained under `mixed_float16` computes in float16 and would export float16
    (Flex) ops; the float32 rebuild exports builtins only, whatever the training policy.
    Raises ExportError (via RunDirError's message) for a missing or unfinished run.
    """
    from kit.tokenizer import TokenizerError, load_tokenizer
    from training.run_dir import MODEL_FILE, TOKENIZER_FILE, RunDirError, read_run

    try:
        info = read_run(run_dir)
    except RunDirError as error:
        raise ExportError(str(error)) from None
    # Keras (and TensorFlow) only once the run is known to be there: a mistyped path
    # fails at once and without TensorFlow's start-up noise.
    import keras

    from kit.models import Seq2SeqTransformer, TransformerConfig

    try:
        config = TransformerConfig.from_dict(info.config)
    except (TypeError, ValueError) as error:
        raise ExportError(f"{info.path / 'run.json'} has a bad model config: {error}") from None
    try:
        tokenizer = load_tokenizer(info.path / TOKENIZER_FILE)
    except TokenizerError as error:
        raise ExportError(str(error)) from None
    if tokenizer.vocab_size > min(config.source_vocab_size, config.target_vocab_size):
        raise ExportError(f"{info.path}: the tokenizer has {tokenizer.vocab_size} tokens, "
                          f"more than the model's vocabulary ({config.source_vocab_size}, "
                          f"{config.target_vocab_size})")
    try:
        trained = keras.saving.load_model(info.path / MODEL_FILE, compile=False)
    except Exception as error:  # a damaged zip, a foreign file: all one message for the user
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExportError(f"cannot load {info.path / MODEL_FILE}: {first_line}") from None
    model = Seq2SeqTransformer(config, dtype="float32", name="seq2seq_transformer")
    model.build()
    try:
        model.set_weights(trained.get_weights())
    except ValueError as error:
        raise ExportError(f"{info.path / MODEL_FILE} does not match the config in run.json: "
                          f"{str(error).splitlines()[0]}") from None
    return LoadedRun(info=info, config=config, model=model, tokenizer=tokenizer)


def write_saved_model(model, directory):
    """Writes `model` as a SavedModel with the two fixed-shape (batch 1) signatures.

        encode(source_ids (1, S) int32)
            -> source_mask (1, S) float32, cross_cache (1, L, 2, S, H, Dh) float32
        decode_step(token_ids (1, 1) int32, position (1,) int32,
                    self_cache (1, L, 2, T, H, Dh) float32, source_mask, cross_cache)
            -> logits (1, V) float32, self_cache (1, L, 2, T, H, Dh) float32

    `position` is (1,), not a scalar, so that every input has a batch axis.
    """
    import keras
    import tensorflow as tf

    c = model.config
    S, T, L, H, Dh = (c.max_source_length, c.max_target_length, c.num_decoder_layers,
                      c.num_heads, c.head_dim)

    def encode(source_ids):
        return model.encode(source_ids)

    def decode_step(token_ids, position, self_cache, source_mask, cross_cache):
        logits, cache = model.decode_step(
            token_ids, position[0], self_cache,
            {"source_mask": source_mask, "cross_cache": cross_cache})
        return {"logits": logits, "self_cache": cache}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("encode", encode, input_signature=[
        tf.TensorSpec((1, S), tf.int32, name="source_ids")])
    archive.add_endpoint("decode_step", decode_step, input_signature=[
        tf.TensorSpec((1, 1), tf.int32, name="token_ids"),
        tf.TensorSpec((1,), tf.int32, name="position"),
        tf.TensorSpec((1, L, 2, T, H, Dh), tf.float32, name="self_cache"),
        tf.TensorSpec((1, S), tf.float32, name="source_mask"),
        tf.TensorSpec((1, L, 2, S, H, Dh), tf.float32, name="cross_cache")])
    archive.write_out(str(directory), verbose=False)


def representative_samples(model, source_ids, bos_id, eos_id, batch_size=64):
    """Real inputs of both signatures, to calibrate the int8 recipe on.

    Args:
        model: the float32 Keras model.
        source_ids: (N, S) int32, training sources (already tokenized and padded).

    Returns:
        `(encode_inputs, decode_inputs)`: dicts of arrays with a leading sample axis,
        keyed by the signatures' input names. `decode_inputs` holds every step that the
        float32 model's greedy decoding of those sources takes, up to and including
        each sentence's EOS, with the cache as it stood at that step.
    """
    from keras import ops

    T = model.config.max_target_length
    recorded = {name: [] for name in ("token_ids", "position", "self_cache", "source_mask",
                                      "cross_cache")}
    for start in range(0, len(source_ids), batch_size):
        batch = np.asarray(source_ids[start:start + batch_size], np.int32)
        encoded = model.encode(batch)
        mask = ops.convert_to_numpy(encoded["source_mask"])
        cross = ops.convert_to_numpy(encoded["cross_cache"])
        cache = model.init_cache(len(batch))
        tokens = np.full((len(batch), 1), bos_id, np.int32)
        live = np.ones(len(batch), bool)
        for position in range(T - 1):
            cache_in = ops.convert_to_numpy(cache)
            recorded["token_ids"].append(tokens[live])
            recorded["position"].append(np.full((live.sum(), 1), position, np.int32))
            recorded["self_cache"].append(cache_in[live])
            recorded["source_mask"].append(mask[live])
            recorded["cross_cache"].append(cross[live])
            logits, cache = model.decode_step(tokens, position, cache, encoded)
            tokens = np.argmax(ops.convert_to_numpy(logits), -1).astype(np.int32)[:, None]
            live &= tokens[:, 0] != eos_id
            if not live.any():
                break
    decode_inputs = {name: np.concatenate(parts) for name, parts in recorded.items()}
    decode_inputs["position"] = decode_inputs["position"].reshape(-1)
    return {"source_ids": np.asarray(source_ids, np.int32)}, decode_inputs


def calibration_dataset(encode_inputs, decode_inputs, max_decode_samples=1000, seed=0):
    """The `representative_dataset` generator over tf.data: `(signature_key, inputs)`
    pairs with batch-1 arrays, every encode sample, then a seeded random subset of at
    most `max_decode_samples` decode steps (early and late positions alike)."""
    import tensorflow as tf

    encode = tf.data.Dataset.from_tensor_slices(encode_inputs).batch(1)
    decode = tf.data.Dataset.from_tensor_slices(decode_inputs)
    decode = decode.shuffle(len(decode_inputs["position"]), seed=seed)
    decode = decode.take(max_decode_samples).batch(1)

    def generate():
        for inputs in encode.as_numpy_iterator():
            yield "encode", inputs
        for inputs in decode.as_numpy_iterator():
            yield "decode_step", inputs

    return generate


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
    elif recipe == "int8":
        if representative_dataset is None:
            raise ExportError("the int8 recipe needs representative data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
    try:
        with warnings.catch_warnings(), _native_output_silenced():
            # The int8 calibrator runs tf.lite.Interpreter, which warns that it is deprecated.
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            if recipe == "int8":
                content = _int8_matmuls_only(converter, representative_dataset)
            else:
                content = converter.convert()
    except Exception as error:  # ConverterError and friends: one line, op names first
        raise ExportError(f"{recipe} conversion failed: {_conversion_reason(error)}") from None
    flex = sorted(op for op in model_ops(content) if op.startswith("Flex"))
    if flex:
        raise ExportError(f"{recipe} conversion produced Flex ops, which LiteRT's builtin "
                          f"interpreter cannot run: {', '.join(flex)}")
    return content


# Full integer quantization (every op int8, TFLITE_BUILTINS_INT8) converts, but the file
# decodes nothing right (0% token-exact on the small preset): the softmax input is
# scores + the -1e4 mask bias, so its int8 scale comes out near 39 and every unmasked
# score rounds to the same step (attention becomes uniform). With the mask constant at
# -30 the same weights convert to full int8 at 100% token-exact; with -1e4, what keeps
# the model is int8 weights and int8 activations in the FULLY_CONNECTED layers (all
# projections and feed-forward layers: most weights and most compute), the rest float.
INT8_OPS = ("FULLY_CONNECTED",)


def _int8_matmuls_only(converter, representative_dataset):
    """Calibrates, then quantizes only the `INT8_OPS` (the others are denylisted).

    Calibration runs TensorFlow's own LiteRT kernels, whose STRIDED_SLICE takes at most
    5-D tensors: the model must not slice its 6-D caches (kit's decode_step unstacks).
    """
    import tensorflow as tf
    from ai_edge_litert import schema_py_generated as schema

    float_ops = [name for name in vars(schema.BuiltinOperator)
                 if not name.startswith("_") and name not in INT8_OPS]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=float_ops))
    return debugger.get_nondebug_quantized_model()


@contextlib.contextmanager
def _native_output_silenced():
    """Sends what the converter's C++ side prints (MLIR diagnostics, the calibrator's
    "fully_quantize: ..." line) to a discarded file instead of the user's terminal: the
    exception carries the diagnostics, and `convert` reports them in one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


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


def model_ops(content):
    """The set of op names in a .tflite flatbuffer, read from the file itself: builtin
    ops by their `BuiltinOperator` name (e.g. "FULLY_CONNECTED"), custom ops (Flex ops
    among them) by their custom code (e.g. "FlexStridedSlice")."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    ops = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.add(code.CustomCode().decode("utf-8"))
        else:
            ops.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return ops


def export_model(loaded, recipes, calibration_sources=200, max_decode_samples=1000,
                 progress=print):
    """Converts a loaded run under each recipe; returns {recipe: flatbuffer bytes}.

    The SavedModel is written once into a temporary directory and removed afterwards.
    """
    from training.run_dir import TRAIN_SAMPLE, read_pairs

    contents = {}
    with tempfile.TemporaryDirectory(prefix="kit-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        progress("writing the float32 SavedModel (encode, decode_step)")
        write_saved_model(loaded.model, saved_model)
        calibration = None
        if "int8" in recipes:
            pairs = read_pairs(loaded.info.path / TRAIN_SAMPLE)
            sources = [source for source, _ in pairs]
            rng = np.random.default_rng(0)
            picked = rng.permutation(len(sources))[:calibration_sources]
            S = loaded.config.max_source_length
            ids = np.array([source_ids_for(loaded.tokenizer, sources[i], S) for i in picked],
                           np.int32).reshape(-1, S)
            if not len(ids):
                raise ExportError(f"{loaded.info.path / TRAIN_SAMPLE} holds no "
                                  "pairs to calibrate the int8 recipe on")
            progress(f"recording calibration inputs from {len(ids)} training sources")
            encode_inputs, decode_inputs = representative_samples(
                loaded.model, ids, loaded.tokenizer.bos_id, loaded.tokenizer.eos_id)
            calibration = calibration_dataset(encode_inputs, decode_inputs,
                                              max_decode_samples)
        for recipe in recipes:
            progress(f"converting: {recipe}")
            contents[recipe] = convert(saved_model, recipe,
                                       calibration if recipe == "int8" else None)
    return contents
