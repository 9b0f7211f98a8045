import keras
import numpy as np
import pytest

from kit.layers import DecoderBlock
from tests.layer_test_helper import run_layer_test

RNG = np.random.default_rng(5)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
CONTEXT = RNG.normal(size=(2, 7, 8)).astype("float32")
CONTEXT_MASK = np.array([[1] * 4 + [0] * 3, [1] * 7], dtype="float32")


def np_(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("norm_first", [True, False])
def test_layer_contract(norm_first):
    run_layer_test(DecoderBlock, dict(num_heads=2, head_dim=4, ff_dim=16, dropout=0.1,
                                      norm_first=norm_first),
                   (X, CONTEXT, CONTEXT_MASK), expected_output_shape=X.shape)


def test_causality():
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    reference = np_(block(X, CONTEXT, CONTEXT_MASK))
    for t in range(4):
        changed = X.copy()
        changed[:, t + 1:] += 1.0
        np.testing.assert_allclose(np_(block(changed, CONTEXT, CONTEXT_MASK))[:, :t + 1],
                                   reference[:, :t + 1], atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_cached_steps_equal_the_full_pass(norm_first):
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16, norm_first=norm_first)
    full = np_(block(X, CONTEXT, CONTEXT_MASK))
    key, value = block.project_context(CONTEXT)
    cache = np.zeros((2, 2, 5, 2, 4), "float32")  # (B, 2, T, H, Dh)
    for t in range(5):
        out, cache = block.call_with_cache(X[:, t:t + 1], t, cache, key, value, CONTEXT_MASK)
        np.testing.assert_allclose(np_(out)[:, 0], full[:, t], atol=1e-5)


def test_cross_attention_weights_are_returned():
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    _, weights = block(X, CONTEXT, CONTEXT_MASK, return_attention_scores=True)
    weights = np_(weights)
    assert weights.shape == (2, 2, 5, 7)
    assert weights[0, :, :, 4:].max() == 0.0


def test_argument_errors():
    with pytest.raises(ValueError, match="num_heads=-2"):
        DecoderBlock(num_heads=-2, head_dim=4, ff_dim=16)
