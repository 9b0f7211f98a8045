"""`run_layer_test`: the checks every kit layer goes through (after keras' own helper).

Config round trip (also through the package's serialization registry), build, symbolic
and eager call, one training step that moves every trainable weight, and both mixed
precision policies (float32 variables, compute-dtype outputs, no NaN).
"""

import keras
import numpy as np

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def run_layer_test(layer_cls, init_kwargs, inputs, call_kwargs=None, expected_output_shape=None,
                   run_training=True, run_mixed_precision=True):
    """Run the shared layer checks.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        inputs: a numpy array or a tuple of them: the positional call arguments.
        call_kwargs: extra keyword call arguments (non-tensor).
        expected_output_shape: shape of the (first) output for `inputs`.
        run_training: fit one step and check every trainable weight moved.
        run_mixed_precision: run both mixed policies.
    """
    inputs = _as_tuple(inputs)
    call_kwargs = call_kwargs or {}

    # Config round trip, directly and through the registered name.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    assert layer_cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls and revived.get_config() == config

    # Build from shapes, then eager call.
    layer.build(*[x.shape for x in inputs])
    assert layer.built
    eager = _first(layer(*inputs, **call_kwargs))
    eager = keras.ops.convert_to_numpy(eager)
    if expected_output_shape is not None:
        assert tuple(eager.shape) == tuple(expected_output_shape), eager.shape
    assert np.all(np.isfinite(eager))

    # A second layer from the same config and weights gives the same output.
    twin = layer_cls.from_config(config)
    twin.build(*[x.shape for x in inputs])
    twin.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(_first(twin(*inputs, **call_kwargs))), eager, atol=1e-6)

    # Symbolic call.
    symbolic_inputs = [keras.Input(shape=x.shape[1:], batch_size=x.shape[0], dtype=x.dtype.name)
                       for x in inputs]
    symbolic = _first(layer_cls(**init_kwargs)(*symbolic_inputs, **call_kwargs))
    assert tuple(symbolic.shape) == tuple(eager.shape), (symbolic.shape, eager.shape)

    if run_training:
        _check_training_step(layer_cls, init_kwargs, inputs, call_kwargs)

    if run_mixed_precision:
        for policy in MIXED_POLICIES:
            mixed = layer_cls(**init_kwargs, dtype=policy)
            output = _first(mixed(*inputs, **call_kwargs))
            assert all(w.dtype == "float32" for w in mixed.weights), policy
            assert keras.backend.standardize_dtype(output.dtype) == mixed.compute_dtype, policy
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(
                keras.ops.cast(output, "float32")))), policy


def _check_training_step(layer_cls, init_kwargs, inputs, call_kwargs):
    layer = layer_cls(**init_kwargs)
    symbolic_inputs = [keras.Input(shape=x.shape[1:], batch_size=x.shape[0], dtype=x.dtype.name)
                       for x in inputs]
    outputs = layer(*symbolic_inputs, **call_kwargs)
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    model = keras.Model(symbolic_inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse"] * len(outputs))
    before = [np.array(w) for w in layer.trainable_weights]
    assert before, "a trainable layer without trainable weights"
    rng = np.random.default_rng(0)
    targets = [rng.normal(size=o.shape).astype("float32") for o in outputs]
    model.fit(list(inputs), targets, batch_size=inputs[0].shape[0], epochs=1, verbose=0)
    after = [np.array(w) for w in layer.trainable_weights]
    frozen = [w.path for w, a, b in zip(layer.trainable_weights, after, before)
              if np.array_equal(a, b)]
    assert not frozen, f"weights that one training step did not move: {frozen}"


def assert_kernels_differ(layer):
    """No two same-shape kernels (or embedding tables) of a built `layer` start equal.

    Biases and layer-norm scales start at constants by design and are left out: only
    weights of rank 2 or more. Fails if there is no same-shape pair to compare, so a
    test cannot pass without checking something.
    """
    kernels = [w for w in layer.weights if len(w.shape) >= 2]
    pairs = [(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:]
             if tuple(a.shape) == tuple(b.shape)]
    assert pairs, f"no two kernels of the same shape in {[w.path for w in kernels]}"
    equal = [(a.path, b.path) for a, b in pairs if np.array_equal(np.array(a), np.array(b))]
    assert not equal, f"kernels that start equal: {equal}"
    return len(pairs)


def copy_into_multi_head_attention(ours, mha):
    """Our attention layer's weights into a built `keras.layers.MultiHeadAttention` with
    the same H and Dh: its query, key and value kernels are (D, H, Dh) with (H, Dh)
    biases, its output kernel (H, Dh, D)."""
    heads = (ours.num_heads, ours.head_dim)
    for which in ("query", "key", "value"):
        dense = getattr(mha, f"_{which}_dense")
        kernel = np.array(getattr(ours.qkv, f"{which}_kernel"))
        dense.kernel.assign(kernel.reshape(kernel.shape[:1] + heads))  # (D, H, Dh)
        dense.bias.assign(np.array(getattr(ours.qkv, f"{which}_bias")).reshape(heads))
    kernel = np.array(ours.output_dense.kernel)
    mha._output_dense.kernel.assign(kernel.reshape(heads + kernel.shape[1:]))  # (H, Dh, D)
    mha._output_dense.bias.assign(np.array(ours.output_dense.bias))
