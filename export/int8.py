"""The full-integer (int8) recipe: calibration inputs recorded from the model's own
decoding, and the attention mask bias the int8 file is converted with.

With kit's default mask bias of -1e4 the softmax input spans ~1e4, its int8 step comes
out near 39, every real score rounds to the same step, and the file decoded nothing right
(0% token-exact on the small preset). So the int8 file is converted from a rebuild of the
model whose bias is measured (`int8_mask_value`); the weights are the same, and
verification still compares with the original model.
"""

import math
import warnings

import numpy as np

from kit.decoding import greedy_search
from kit.runtime.signatures import (
    DECODE_STEP,
    ENCODE,
    POSITION,
    SOURCE_IDS,
    TOKEN_IDS,
)
from kit.tokenizers import PAD_ID, source_ids

from .convert import (
    RECIPE_NOTES,
    Exported,
    convert,
    decode_step_inputs,
    write_saved_model,
)
from .errors import ExportError
from .flatbuffer import float_ops, op_names
from .load import rebuild


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
    recorded = {name: [] for name in decode_step_inputs(model.config)}
    for start in range(0, len(source_ids), batch_size):
        batch = np.asarray(source_ids[start:start + batch_size], np.int32)
        encoded = model.encode(batch)
        encoded_numpy = {name: ops.convert_to_numpy(value) for name, value in encoded.items()}
        cache = model.init_cache(len(batch))

        def step(tokens, position, encoded=encoded, encoded_numpy=encoded_numpy):
            nonlocal cache
            # A row fed its EOS (or padding after it) has finished: not a real step.
            live = (tokens != eos_id) & (tokens != PAD_ID)
            recorded[TOKEN_IDS].append(tokens[live, None])
            recorded[POSITION].append(np.full(live.sum(), position, np.int32))
            for name, value in encoded_numpy.items():
                recorded[name].append(value[live])
            for name, value in cache.items():
                recorded[name].append(ops.convert_to_numpy(value)[live])
            logits, cache = model.decode_step(tokens[:, None], position, cache, encoded)
            return ops.convert_to_numpy(logits)

        greedy_search(step, len(batch), bos_id, eos_id, T - 1)
    decode_inputs = {name: np.concatenate(parts) for name, parts in recorded.items()}
    return {SOURCE_IDS: np.asarray(source_ids, np.int32)}, decode_inputs


def calibration_dataset(encode_inputs, decode_inputs, max_decode_samples=1000, seed=0):
    """The `representative_dataset` generator over tf.data: `(signature_key, inputs)`
    pairs with batch-1 arrays, every encode sample, then a seeded random subset of at
    most `max_decode_samples` decode steps (early and late positions alike)."""
    import tensorflow as tf

    encode = tf.data.Dataset.from_tensor_slices(encode_inputs).batch(1)
    decode = tf.data.Dataset.from_tensor_slices(decode_inputs)
    # One fixed subset: the converter may iterate the generator more than once.
    decode = decode.shuffle(len(decode_inputs[POSITION]), seed=seed,
                            reshuffle_each_iteration=False)
    decode = decode.take(max_decode_samples).batch(1)

    def generate():
        for inputs in encode.as_numpy_iterator():
            yield ENCODE, inputs
        for inputs in decode.as_numpy_iterator():
            yield DECODE_STEP, inputs

    return generate


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
    names = op_names(model)
    subgraphs = {}  # signature key -> (subgraph index, softmax input tensor indices)
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        graph = model.Subgraphs(signature.SubgraphIndex())
        subgraphs[signature.SignatureKey().decode("utf-8")] = (
            signature.SubgraphIndex(),
            [graph.Operators(o).Inputs(0) for o in range(graph.OperatorsLength())
             if names[graph.Operators(o).OpcodeIndex()] == "SOFTMAX"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*experimental_preserve_all_tensors")
        # Without the default XNNPACK delegate, whose fused ops keep no intermediates.
        interpreter = Interpreter(
            model_content=float32_content, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    rows, leads, spreads = 0, [], []
    for key, inputs in ((ENCODE, encode_inputs), (DECODE_STEP, decode_inputs)):
        runner = interpreter.get_signature_runner(key)
        subgraph, softmax_inputs = subgraphs[key]
        for i in range(len(next(iter(inputs.values())))):
            runner(**{name: values[i:i + 1] for name, values in inputs.items()})
            for index in softmax_inputs:
                scores = interpreter.get_tensor(index, subgraph).astype(np.float64)
                if key == ENCODE:  # (1, H, S, S): real queries only
                    scores = scores[:, :, inputs[SOURCE_IDS][i] != 0]
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


def export_int8(loaded, float32_content, tmp, calibration_sources, max_decode_samples,
                progress):
    """Calibration inputs from the original model, its attention scores measured in its
    float32 file, then the int8 conversion of a rebuild with `int8_mask_value`: the
    (1, S) signature pair only (export/cli.py says why)."""
    from kit.layout import sibling

    rd = sibling("training.run_dir")
    pairs = rd.read_pairs(loaded.info.path / rd.TRAIN_SAMPLE)
    sources = [source for source, _ in pairs]
    picked = np.random.default_rng(0).permutation(len(sources))[:calibration_sources]
    S = loaded.config.max_source_length
    ids = np.array([source_ids(loaded.tokenizers.source, sources[i], S) for i in picked],
                   np.int32).reshape(-1, S)
    if not len(ids):
        raise ExportError(f"{loaded.info.path / rd.TRAIN_SAMPLE} holds no "
                          "pairs to calibrate the int8 recipe on")
    progress(f"recording calibration inputs from {len(ids)} training sources")
    encode_inputs, decode_inputs = representative_samples(
        loaded.model, ids, loaded.tokenizers.target.bos_id, loaded.tokenizers.target.eos_id)
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
                                              len(decode_inputs[POSITION]))},
        "float_ops": float_ops(content),
    }
    return Exported(content, model.config, quantization)
