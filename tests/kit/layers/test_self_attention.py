import keras
import numpy as np
import pytest

from kit.layers import SelfAttention
from tests.layer_test_helper import run_layer_test

RNG = np.random.default_rng(1)
X = RNG.normal(size=(2, 6, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype="float32")


def np_(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("causal", [False, True])
def test_layer_contract(causal):
    run_layer_test(SelfAttention, dict(num_heads=2, head_dim=4, causal=causal, dropout=0.1),
                   (X, MASK), expected_output_shape=X.shape)


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
    cache = np.zeros((2, 2, 6, 2, 4), "float32")  # (B, 2, T, H, Dh)
    for t in range(6):
        out, cache = layer.call_with_cache(X[:, t:t + 1], t, cache)
        np.testing.assert_allclose(np_(out)[:, 0], full[:, t], atol=1e-5)


def test_float16_masking_does_not_overflow():
    layer = SelfAttention(num_heads=2, head_dim=4, causal=True, dtype="mixed_float16")
    out, weights = layer(X * 50, padding_mask=MASK, return_attention_scores=True)
    assert np.all(np.isfinite(np_(keras.ops.cast(out, "float32"))))
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"


def test_cache_needs_a_causal_layer():
    layer = SelfAttention(num_heads=2, head_dim=4)
    layer.build(X.shape)
    with pytest.raises(ValueError, match="causal=False"):
        layer.call_with_cache(X[:, :1], 0, np.zeros((2, 2, 6, 2, 4), "float32"))


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
