import keras
import numpy as np
import pytest

from kit.layers import DecoderBlock
from tests.layer_test_helper import assert_kernels_differ, run_layer_test

RNG = np.random.default_rng(5)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
CONTEXT = RNG.normal(size=(2, 7, 8)).astype("float32")
CONTEXT_MASK = np.array([[1] * 4 + [0] * 3, [1] * 7], dtype="float32")


def np_(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("norm_first", [True, False])
def test_layer_contract(norm_first):
    run_layer_test(DecoderBlock, dict(num_heads=2, head_dim=4, ff_dim=16, dropout=0.1,
                                      norm_first=norm_first, per_head_fans=not norm_first,
                                      residual_dropout=norm_first,
                                      feed_forward_dropout=norm_first),
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
    keys = np.zeros((2, 2, 5, 4), "float32")  # (B, H, T, Dh)
    values = np.zeros((2, 2, 5, 4), "float32")
    for t in range(5):
        out, keys, values = block.call_with_cache(X[:, t:t + 1], t, keys, values, key, value,
                                                  CONTEXT_MASK)
        np.testing.assert_allclose(np_(out)[:, 0], full[:, t], atol=1e-5)


def test_attention_weights_are_returned():
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16)
    _, self_weights, weights = block(X, CONTEXT, CONTEXT_MASK, return_attention_scores=True)
    weights, self_weights = np_(weights), np_(self_weights)
    assert weights.shape == (2, 2, 5, 7)
    assert weights[0, :, :, 4:].max() == 0.0  # padded source tokens
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert self_weights.shape == (2, 2, 5, 5)
    assert np.triu(self_weights, k=1).max() == 0.0  # no position sees a later one
    np.testing.assert_allclose(self_weights.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("per_head_fans", [False, True])
def test_kernels_start_different(per_head_fans):
    # ff_dim = D: the feed-forward kernels share the attention kernels' (8, 8) shape.
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=8, per_head_fans=per_head_fans)
    block.build(X.shape, CONTEXT.shape)
    kernels = 2 * 4 + 2
    assert assert_kernels_differ(block) == kernels * (kernels - 1) // 2


@pytest.mark.parametrize("residual_dropout, feed_forward_dropout", [(True, True),
                                                                    (False, False)])
def test_dropout_sites(residual_dropout, feed_forward_dropout):
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16, dropout=0.3,
                  residual_dropout=residual_dropout,
                  feed_forward_dropout=feed_forward_dropout)
    block.build(X.shape, CONTEXT.shape)
    assert block.branch_dropout.rate == (0.3 if residual_dropout else 0.0)
    assert block.feed_forward.inner_dropout.rate == (0.3 if feed_forward_dropout else 0.0)
    assert block.self_attention.attention_dropout.rate == 0.3  # always on
    config = DecoderBlock.from_config(block.get_config()).get_config()
    assert config["residual_dropout"] is residual_dropout
    assert config["feed_forward_dropout"] is feed_forward_dropout


def test_training_is_deterministic_with_only_attention_dropout_and_rate_zero():
    # With every optional site off, dropout 0.3 on nothing but the attention weights;
    # setting that to 0 too must leave training mode equal to inference.
    block = DecoderBlock(num_heads=2, head_dim=4, ff_dim=16, dropout=0.3, residual_dropout=False,
                  feed_forward_dropout=False)
    block.build(X.shape, CONTEXT.shape)
    block.self_attention.attention_dropout.rate = 0.0
    if hasattr(block, "cross_attention"):
        block.cross_attention.attention_dropout.rate = 0.0
    inputs = (X,) if 2 == 1 else (X, CONTEXT)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(block(*inputs, training=True)),
        keras.ops.convert_to_numpy(block(*inputs, training=False)), atol=1e-6)


def test_argument_errors():
    with pytest.raises(ValueError, match="num_heads=-2"):
        DecoderBlock(num_heads=-2, head_dim=4, ff_dim=16)
