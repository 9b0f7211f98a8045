import keras
import numpy as np
import pytest

from kit.layers import QKVProjection
from tests.layer_test_helper import assert_kernels_differ, run_layer_test

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
CONTEXT = RNG.normal(size=(2, 7, 6)).astype("float32")


def test_layer_contract_self():
    run_layer_test(QKVProjection, dict(num_heads=2, head_dim=3), X,
                   expected_output_shape=(2, 5, 2, 3))


def test_layer_contract_cross():
    run_layer_test(QKVProjection, dict(num_heads=2, head_dim=3), (X, CONTEXT),
                   expected_output_shape=(2, 5, 2, 3))


def test_layer_contract_per_head_fans():
    run_layer_test(QKVProjection, dict(num_heads=2, head_dim=3, per_head_fans=True), X,
                   expected_output_shape=(2, 5, 2, 3))


def test_values_are_inputs_times_the_learned_matrices():
    layer = QKVProjection(num_heads=2, head_dim=3, use_bias=False)
    layer.build(X.shape, CONTEXT.shape)
    wq, wk, wv = (np.asarray(w) for w in (layer.query_kernel, layer.key_kernel,
                                          layer.value_kernel))
    # Distinct kernels are what lets this test tell K from V (W^K and W^V have one shape).
    assert not np.allclose(wk, wv)
    q, k, v = (np.asarray(t) for t in layer(X, CONTEXT))
    np.testing.assert_allclose(q, (X @ wq).reshape(2, 5, 2, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(k, (CONTEXT @ wk).reshape(2, 7, 2, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, (CONTEXT @ wv).reshape(2, 7, 2, 3), rtol=1e-5, atol=1e-6)


def test_fused_self_projection_keeps_the_order_q_k_v():
    layer = QKVProjection(num_heads=2, head_dim=4, use_bias=False)
    layer.build(X.shape)
    q, k, v = (np.asarray(t) for t in layer(X))
    for out, kernel in zip((q, k, v), (layer.query_kernel, layer.key_kernel,
                                       layer.value_kernel)):
        np.testing.assert_allclose(out, (X @ np.asarray(kernel)).reshape(2, 5, 2, 4),
                                   rtol=1e-5, atol=1e-6)
    assert not np.allclose(q, k) and not np.allclose(k, v) and not np.allclose(q, v)


@pytest.mark.parametrize("per_head_fans", [False, True])
def test_kernels_start_different(per_head_fans):
    layer = QKVProjection(num_heads=2, head_dim=4, per_head_fans=per_head_fans)
    layer.build(X.shape)
    assert assert_kernels_differ(layer) == 3  # W^Q, W^K, W^V: all (8, 8)


def test_a_seeded_initializer_still_gives_equal_kernels():
    # A copy of an integer-seeded initializer keeps the seed: asking for a seed asks for
    # reproducible values, as in keras.layers.MultiHeadAttention.
    layer = QKVProjection(num_heads=2, head_dim=4,
                          kernel_initializer=keras.initializers.GlorotUniform(seed=3))
    layer.build(X.shape)
    np.testing.assert_array_equal(np.asarray(layer.query_kernel), np.asarray(layer.key_kernel))


def glorot_limit(fan_in, fan_out):
    return np.sqrt(6.0 / (fan_in + fan_out))


@pytest.mark.parametrize("per_head_fans, limit", [
    (False, glorot_limit(64, 4 * 16)),  # the (D, H*Dh) matrix's fans: 0.217
    (True, glorot_limit(64 * 4, 64 * 16)),  # a (D, H, Dh) array's Keras fans: 0.068
])
def test_glorot_limits_follow_the_fans(per_head_fans, limit):
    layer = QKVProjection(num_heads=4, head_dim=16, per_head_fans=per_head_fans)
    layer.build((1, 1, 64))
    for kernel in (layer.query_kernel, layer.key_kernel, layer.value_kernel):
        values = np.abs(np.asarray(kernel))  # 4,096 uniform draws in [-limit, limit]
        assert limit * 0.99 < values.max() <= limit


def test_default_initialisation_draws_like_multi_head_attention():
    # Keras 3.15's EinsumDense gives MultiHeadAttention's (D, H, Dh) kernels the fans of
    # the (D, H*Dh) matrix, so the tutorial's model and ours start alike by default.
    layer = QKVProjection(num_heads=4, head_dim=16)
    layer.build((1, 1, 64))
    mha = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)
    mha.build((1, 1, 64), (1, 1, 64))
    ours = np.asarray(layer.query_kernel)
    theirs = np.asarray(mha._query_dense.kernel)  # (D, H, Dh)
    assert theirs.shape == (64, 4, 16)
    np.testing.assert_allclose(np.abs(ours).max(), np.abs(theirs).max(), rtol=0.01)
    np.testing.assert_allclose(ours.std(), theirs.std(), rtol=0.05)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_heads=0, head_dim=4), "num_heads=0"),
    (dict(num_heads=2, head_dim=-1), "head_dim=-1"),
    (dict(num_heads=2.5, head_dim=4), "num_heads=2.5"),
    (dict(num_heads=2, head_dim=4, kernel_initializer="not_an_initializer"),
     "not_an_initializer"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QKVProjection(**kwargs)
