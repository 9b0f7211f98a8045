import keras
import numpy as np
import pytest

from kit.layers import SelfAttention
from tests.layer_test_helper import (
    assert_kernels_differ,
    copy_into_multi_head_attention,
    run_layer_test,
)

RNG = np.random.default_rng(1)
X = RNG.normal(size=(2, 6, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype="float32")


def np_(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("causal", [False, True])
def test_layer_contract(causal):
    run_layer_test(SelfAttention, dict(num_heads=2, head_dim=4, causal=causal, dropout=0.1),
                   (X, MASK), expected_output_shape=X.shape)


@pytest.mark.parametrize("per_head_fans", [False, True])
def test_layer_contract_per_head_fans(per_head_fans):
    run_layer_test(SelfAttention, dict(num_heads=2, head_dim=4, per_head_fans=per_head_fans,
                                       kernel_initializer="he_uniform"),
                   (X, MASK), expected_output_shape=X.shape, run_mixed_precision=False)


@pytest.mark.parametrize("per_head_fans", [False, True])
def test_kernels_start_different(per_head_fans):
    layer = SelfAttention(num_heads=2, head_dim=4, per_head_fans=per_head_fans)
    layer.build(X.shape)
    assert assert_kernels_differ(layer) == 6  # W^Q, W^K, W^V, W^O: all (8, 8)


def random_biases(layer, seed=7):
    """Non-zero biases, so that a golden test also checks where each one is added."""
    rng = np.random.default_rng(seed)
    for bias in (layer.qkv.query_bias, layer.qkv.key_bias, layer.qkv.value_bias,
                 layer.output_dense.bias):
        bias.assign(rng.normal(size=bias.shape).astype("float32"))


@pytest.mark.parametrize("causal, padded", [(False, False), (True, False), (False, True),
                                            (True, True)])
def test_same_as_keras_multi_head_attention(causal, padded):
    layer = SelfAttention(num_heads=2, head_dim=4, causal=causal)
    layer.build(X.shape)
    random_biases(layer)
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    mha.build(X.shape, X.shape)
    copy_into_multi_head_attention(layer, mha)
    # MASK leaves key 0 real in every row, so no query row is fully masked (there our
    # -1e4 bias and MultiHeadAttention's select could differ).
    padding_mask = MASK if padded else None
    attention_mask = None if padding_mask is None else np.broadcast_to(
        MASK[:, None, :] > 0, (2, 6, 6))  # (B, T, S): the same keys hidden for every query
    out, weights = layer(X, padding_mask=padding_mask, return_attention_scores=True)
    expected, expected_weights = mha(X, X, attention_mask=attention_mask,
                                     use_causal_mask=causal, return_attention_scores=True)
    np.testing.assert_allclose(np_(weights), np_(expected_weights), atol=1e-5)
    np.testing.assert_allclose(np_(out), np_(expected), atol=1e-5)


def test_hand_computed_scores_are_scaled_by_one_over_sqrt_head_dim():
    # H = 1, Dh = D = 4, identity kernels, zero biases: q = k = v = x. Two tokens,
    # x0 = (2, 0, 0, 0) and x1 = (0, 2, 0, 0): q0.k0 = 4 and q0.k1 = 0, so the scores of
    # token 0 are (4 / sqrt(4), 0) = (2, 0) and its weights softmax(2, 0) =
    # (e^2 / (e^2 + 1), 1 / (e^2 + 1)) = (0.880797, 0.119203). A scale of 1/Dh would give
    # (0.731059, 0.268941), none (0.982014, 0.017986).
    layer = SelfAttention(num_heads=1, head_dim=4)
    layer.build((1, 2, 4))
    for kernel in (layer.qkv.query_kernel, layer.qkv.key_kernel, layer.qkv.value_kernel,
                   layer.output_dense.kernel):
        kernel.assign(np.eye(4, dtype="float32"))
    x = np.array([[[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]], "float32")
    out, weights = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(np_(weights)[0, 0], [[0.880797, 0.119203],
                                                   [0.119203, 0.880797]], atol=1e-5)
    # Output = weights @ v: 0.880797 * x0 + 0.119203 * x1, and symmetrically.
    np.testing.assert_allclose(np_(out)[0], [[1.761594, 0.238406, 0.0, 0.0],
                                             [0.238406, 1.761594, 0.0, 0.0]], atol=1e-5)


def test_causal_output_at_t_ignores_later_inputs():
    layer = SelfAttention(num_heads=2, head_dim=4, causal=True)
    reference = np_(layer(X))
    for t in range(X.shape[1] - 1):
        changed = X.copy()
        changed[:, t + 1:] = RNG.normal(size=changed[:, t + 1:].shape)
        out = np_(layer(changed))
        np.testing.assert_allclose(out[:, : t + 1], reference[:, : t + 1], atol=1e-6)
        assert not np.allclose(out[:, t + 1:], reference[:, t + 1:])


def test_causal_equals_cutting_the_input():
    layer = SelfAttention(num_heads=2, head_dim=4, causal=True)
    full = np_(layer(X))
    np.testing.assert_allclose(np_(layer(X[:, :3])), full[:, :3], atol=1e-6)


def test_padding_keys_are_ignored_and_weights_are_distributions():
    layer = SelfAttention(num_heads=2, head_dim=4)
    out, weights = layer(X, padding_mask=MASK, return_attention_scores=True)
    weights = np_(weights)
    assert weights.shape == (2, 2, 6, 6) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert weights[0, :, :, 4:].max() == 0.0
    # What sits in padded positions cannot change the real ones.
    changed = X.copy()
    changed[0, 4:] = 100.0
    np.testing.assert_allclose(np_(layer(changed, padding_mask=MASK))[0, :4], np_(out)[0, :4],
                               atol=1e-5)


def test_boolean_and_float_padding_masks_agree():
    layer = SelfAttention(num_heads=2, head_dim=4)
    np.testing.assert_allclose(np_(layer(X, padding_mask=MASK.astype(bool))),
                               np_(layer(X, padding_mask=MASK)), atol=1e-6)


def test_cached_steps_equal_the_full_causal_pass():
    layer = SelfAttention(num_heads=2, head_dim=4, causal=True)
    full = np_(layer(X))
    keys = np.zeros((2, 2, 6, 4), "float32")  # (B, H, T, Dh)
    values = np.zeros((2, 2, 6, 4), "float32")
    for t in range(6):
        out, keys, values = layer.call_with_cache(X[:, t:t + 1], t, keys, values)
        np.testing.assert_allclose(np_(out)[:, 0], full[:, t], atol=1e-5)
    # Each cache holds that layer's own projections, written at their positions.
    _, k, v = layer.qkv(X)
    np.testing.assert_allclose(np_(keys), np_(k).transpose(0, 2, 1, 3), atol=1e-6)
    np.testing.assert_allclose(np_(values), np_(v).transpose(0, 2, 1, 3), atol=1e-6)


def test_float16_masking_does_not_overflow():
    layer = SelfAttention(num_heads=2, head_dim=4, causal=True, dtype="mixed_float16")
    out, weights = layer(X * 50, padding_mask=MASK, return_attention_scores=True)
    assert np.all(np.isfinite(np_(keras.ops.cast(out, "float32"))))
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"


def test_cache_needs_a_causal_layer():
    layer = SelfAttention(num_heads=2, head_dim=4)
    layer.build(X.shape)
    with pytest.raises(ValueError, match="causal=False"):
        empty = np.zeros((2, 6, 2, 4), "float32")
        layer.call_with_cache(X[:, :1], 0, empty, empty)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_heads=2, head_dim=4, dropout=-0.1), "dropout=-0.1"),
    (dict(num_heads=2, head_dim=4, dropout=1.0), "dropout=1.0"),
    (dict(num_heads=0, head_dim=4), "num_heads=0"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelfAttention(**kwargs)


def test_mask_value_is_configurable_and_checked():
    layer = SelfAttention(num_heads=2, head_dim=4, mask_value=-30.0)
    _, weights = layer(X, padding_mask=MASK, return_attention_scores=True)
    assert np_(weights)[0, :, :, 4:].max() < 1e-9
    assert SelfAttention.from_config(layer.get_config()).mask_value == -30.0
    for bad in (0.0, 5.0, -1e5):
        with pytest.raises(ValueError, match="mask_value"):
            SelfAttention(num_heads=2, head_dim=4, mask_value=bad)
