"""A run directory -> a LiteRT flatbuffer with the `encode` and `decode_step` signatures.

The route is the one platform-notes.md found to keep Keras 3 weights: rebuild the model
in float32, track it in a `keras.export.ExportArchive` with one endpoint per signature,
write a SavedModel, and convert that with `tf.lite.TFLiteConverter.from_saved_model`
restricted to builtin ops, so that an op the phone cannot run fails here.

Inputs and outputs stay float32 and int32 in every recipe, so one runtime serves all.

The int8 recipe converts a rebuild of the model whose attention mask bias is small
(`int8_mask_value`): with kit's default of -1e4 the softmax input spans ~1e4, its
int8 step comes out near 39, every real score rounds to the same step, and the file
decoded nothing right (0% token-exact on the small preset). The weights are the same,
and verification still compares with the original model.
"""

import contextlib
import math
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kit.tokenizer import source_ids

# What each recipe does to the model; bundle.json repeats it for the device developer.
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
RECIPES = tuple(RECIPE_NOTES)
SIGNATURES = ("encode", "decode_step")


class ExportError(RuntimeError):
    """Export cannot go on; the message is one line for the user."""


@dataclass
class Exported:
    """One recipe's flatbuffer and what bundle.json and report.json say about it."""

    content: bytes
    config: object  # the TransformerConfig the file was converted from
    quantization: dict  # "summary" (RECIPE_NOTES), plus the recipe's chosen values


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


def rebuild(loaded, **overrides):
    """A float32 model with `loaded`'s weights and its config changed by `overrides`
    (fields that change no weight shape, such as `attention_mask_value`)."""
    from kit.models import Seq2SeqTransformer

    try:
        config = replace(loaded.config, **overrides)
    except ValueError as error:
        raise ExportError(f"cannot rebuild the model: {error}") from None
    model = Seq2SeqTransformer(config, dtype="float32", name="seq2seq_transformer")
    model.build()
    model.set_weights(loaded.model.get_weights())
    return model


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
    # One fixed subset: the converter may iterate the generator more than once.
    decode = decode.shuffle(len(decode_inputs["position"]), seed=seed,
                            reshuffle_each_iteration=False)
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
        with warnings.catch_warnings(), _native_output_silenced():
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

    return set(_op_names(schema.Model.GetRootAs(content, 0)))


def _op_names(model):
    """The op name of each operator code of a `schema.Model`, by opcode index."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.append(code.CustomCode().decode("utf-8"))
        else:
            ops.append(names.get(builtin, f"BUILTIN_{builtin}"))
    return ops


def op_tensor_types(content):
    """How each op type computes in a .tflite file, over all its signatures:
    {op name: {"(int8,int8) -> (int8)": number of such ops}}, the types of each op's
    input and output tensors (absent optional inputs left out)."""
    from ai_edge_litert import schema_py_generated as schema

    type_names = {value: name.lower() for name, value in vars(schema.TensorType).items()
                  if not name.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    op_names = _op_names(model)
    found = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)

            def types(indices):
                return ",".join(type_names[graph.Tensors(i).Type()] for i in indices if i >= 0)

            key = (f"({types(op.Inputs(j) for j in range(op.InputsLength()))}) -> "
                   f"({types(op.Outputs(j) for j in range(op.OutputsLength()))})")
            counts = found.setdefault(op_names[op.OpcodeIndex()], {})
            counts[key] = counts.get(key, 0) + 1
    return {name: dict(sorted(counts.items())) for name, counts in sorted(found.items())}


def float_ops(content):
    """The ops of `op_tensor_types` that read or write a float32 tensor, QUANTIZE and
    DEQUANTIZE (the conversions between float32 and int8) left out."""
    return {name: {key: n for key, n in counts.items() if "float32" in key}
            for name, counts in op_tensor_types(content).items()
            if name not in ("QUANTIZE", "DEQUANTIZE")
            and any("float32" in key for key in counts)}


# The int8 rebuild puts masked keys this far (in raw score units) below the best real
# score of their row, as measured on the calibration data: a masked key then weighs at
# most e^-15 (3e-7) of the row's top key, far below the int8 softmax output's step of
# 1/256, and the float model behaves as with kit's -1e4.
INT8_MASK_MARGIN = 15.0


def attention_score_stats(float32_content, encode_inputs, decode_inputs, mask_value):
    """The attention scores of the float32 file on the calibration inputs, read from
    its SOFTMAX inputs (scores + mask bias) with LiteRT.

    Args:
        float32_content: the float32 flatbuffer of the model, mask bias `mask_value`.
        encode_inputs, decode_inputs: `representative_samples`' output.
        mask_value: the model's `attention_mask_value`. An entry below `mask_value / 2`
            counts as masked (raw score: entry - mask_value): real scores are nowhere
            near -5e3 with kit's -1e4; with a small bias, some real keys would count
            as masked, which errs towards a larger lead (a safer bias).

    Returns:
        dict: `rows`, the attention rows measured (every head, layer and query; a query
        at a padding position of the source is left out, as what it attends to
        reaches nothing); `max_masked_lead`, the most by which a masked key's raw
        score exceeded the best real score of its row (None if no row had a masked
        key); `max_real_spread`, the largest max - min of a row's real scores.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = schema.Model.GetRootAs(float32_content, 0)
    op_names = _op_names(model)
    subgraphs = {}  # signature key -> (subgraph index, softmax input tensor indices)
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        graph = model.Subgraphs(signature.SubgraphIndex())
        subgraphs[signature.SignatureKey().decode("utf-8")] = (
            signature.SubgraphIndex(),
            [graph.Operators(o).Inputs(0) for o in range(graph.OperatorsLength())
             if op_names[graph.Operators(o).OpcodeIndex()] == "SOFTMAX"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*experimental_preserve_all_tensors")
        # Without the default XNNPACK delegate, whose fused ops keep no intermediates.
        interpreter = Interpreter(
            model_content=float32_content, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    rows, leads, spreads = 0, [], []
    for key, inputs in (("encode", encode_inputs), ("decode_step", decode_inputs)):
        runner = interpreter.get_signature_runner(key)
        subgraph, softmax_inputs = subgraphs[key]
        for i in range(len(next(iter(inputs.values())))):
            runner(**{name: values[i:i + 1] for name, values in inputs.items()})
            for index in softmax_inputs:
                scores = interpreter.get_tensor(index, subgraph).astype(np.float64)
                if key == "encode":  # (1, H, S, S): real queries only
                    scores = scores[:, :, inputs["source_ids"][i] != 0]
                scores = scores.reshape(-1, scores.shape[-1])
                masked = scores < mask_value / 2
                attending = ~masked.all(axis=-1)  # a row without a real key attends nowhere
                scores, masked = scores[attending], masked[attending]
                raw = np.where(masked, scores - mask_value, scores)
                best = np.where(masked, -np.inf, raw).max(axis=-1)
                worst = np.where(masked, np.inf, raw).min(axis=-1)
                rows += len(raw)
                spreads.append(float(np.max(best - worst, initial=0.0)))
                with_masked = masked.any(axis=-1)
                if with_masked.any():
                    leads.append(float(np.max(
                        np.where(masked, raw, -np.inf).max(axis=-1)[with_masked]
                        - best[with_masked])))
    return {"rows": rows, "max_masked_lead": max(leads) if leads else None,
            "max_real_spread": max(spreads, default=0.0)}


def int8_mask_value(stats, run_mask_value, margin=INT8_MASK_MARGIN):
    """The attention mask bias of the int8 rebuild: masked keys `margin` below the best
    real score of their row on the calibration data, rounded away from zero to a
    multiple of 5, and never further from zero than the run's own bias.

    As small as that, not larger: the softmax input's int8 step is its calibrated range
    over 255, and the range grows with the bias (the scale is ~0.17 at -30, ~0.45 at
    -100 on the small preset). It need not exceed the whole spread of a row's real
    scores: a masked key above the row's lowest real key is harmless while both weigh
    nothing next to the best one.
    """
    lead = max(stats["max_masked_lead"] or 0.0, 0.0)
    return max(-5.0 * math.ceil((lead + margin) / 5.0), float(run_mask_value))


def export_model(loaded, recipes, calibration_sources=200, max_decode_samples=1000,
                 progress=print):
    """Converts a loaded run under each recipe; returns {recipe: Exported}.

    float32 is converted whether asked for or not: it is the size every recipe is
    compared with, and the file the int8 recipe measures attention scores in. The
    SavedModels are written into a temporary directory and removed afterwards.
    """
    exported = {}
    with tempfile.TemporaryDirectory(prefix="kit-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        progress("writing the float32 SavedModel (encode, decode_step)")
        write_saved_model(loaded.model, saved_model)
        for recipe in dict.fromkeys(["float32", *recipes]):
            if recipe != "int8":
                progress(f"converting: {recipe}")
                exported[recipe] = Exported(convert(saved_model, recipe), loaded.config,
                                            {"summary": RECIPE_NOTES[recipe]})
        if "int8" in recipes:
            exported["int8"] = _export_int8(loaded, exported["float32"].content, Path(tmp),
                                            calibration_sources, max_decode_samples, progress)
    return exported


def _export_int8(loaded, float32_content, tmp, calibration_sources, max_decode_samples,
                 progress):
    """Calibration inputs from the original model, its attention scores measured in its
    float32 file, then the int8 conversion of a rebuild with `int8_mask_value`."""
    from training.run_dir import TRAIN_SAMPLE, read_pairs

    pairs = read_pairs(loaded.info.path / TRAIN_SAMPLE)
    sources = [source for source, _ in pairs]
    picked = np.random.default_rng(0).permutation(len(sources))[:calibration_sources]
    S = loaded.config.max_source_length
    ids = np.array([source_ids(loaded.tokenizer, sources[i], S) for i in picked],
                   np.int32).reshape(-1, S)
    if not len(ids):
        raise ExportError(f"{loaded.info.path / TRAIN_SAMPLE} holds no "
                          "pairs to calibrate the int8 recipe on")
    progress(f"recording calibration inputs from {len(ids)} training sources")
    encode_inputs, decode_inputs = representative_samples(
        loaded.model, ids, loaded.tokenizer.bos_id, loaded.tokenizer.eos_id)
    stats = attention_score_stats(float32_content, encode_inputs, decode_inputs,
                                  loaded.config.attention_mask_value)
    mask_value = int8_mask_value(stats, loaded.config.attention_mask_value)
    lead = stats["max_masked_lead"]
    progress(f"attention mask bias for int8: {mask_value:g} (masked scores at most "
             f"{0.0 if lead is None else lead:.1f} above the best real one)")
    model = rebuild(loaded, attention_mask_value=mask_value)
    saved_model = tmp / "saved_model_int8"
    write_saved_model(model, saved_model)
    progress("converting: int8")
    content = convert(saved_model, "int8",
                      calibration_dataset(encode_inputs, decode_inputs, max_decode_samples))
    quantization = {
        "summary": RECIPE_NOTES["int8"],
        "attention_mask_value": mask_value,
        "attention_scores": {**stats, "margin": INT8_MASK_MARGIN,
                             "run_mask_value": loaded.config.attention_mask_value},
        "calibration": {"encode_samples": len(ids),
                        "decode_samples": min(max_decode_samples,
                                              len(decode_inputs["position"]))},
        "float_ops": float_ops(content),
    }
    return Exported(content, model.config, quantization)
