import keras
import numpy as np
import pytest

from kit.layers import EncoderBlock
from tests.layer_test_helper import assert_kernels_differ, run_layer_test

RNG = np.random.default_rng(4)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype="float32")


@pytest.mark.parametrize("norm_first", [True, False])
def test_layer_contract(norm_first):
    run_layer_test(EncoderBlock, dict(num_heads=2, head_dim=4, ff_dim=16, dropout=0.1,
                                      norm_first=norm_first, per_head_fans=not norm_first,
                                      residual_dropout=norm_first,
                                      feed_forward_dropout=norm_first),
                   (X, MASK), expected_output_shape=X.shape)


@pytest.mark.parametrize("norm_first", [True, False])
def test_appending_padding_changes_no_real_position(norm_first):
    block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=16, norm_first=norm_first)
    out = keras.ops.convert_to_numpy(block(X[:1, :3], padding_mask=MASK[:1, :3]))
    padded = keras.ops.convert_to_numpy(block(X[:1], padding_mask=MASK[:1]))
    np.testing.assert_allclose(padded[:, :3], out, atol=1e-5)


@pytest.mark.parametrize("per_head_fans", [False, True])
def test_kernels_start_different(per_head_fans):
    # ff_dim = D: the feed-forward kernels share the attention kernels' (8, 8) shape.
    block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=8, per_head_fans=per_head_fans)
    block.build(X.shape)
    kernels = 1 * 4 + 2
    assert assert_kernels_differ(block) == kernels * (kernels - 1) // 2


@pytest.mark.parametrize("residual_dropout, feed_forward_dropout", [(True, True),
                                                                    (False, False)])
def test_dropout_sites(residual_dropout, feed_forward_dropout):
    block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=16, dropout=0.3,
                  residual_dropout=residual_dropout,
                  feed_forward_dropout=feed_forward_dropout)
    block.build(X.shape)
    assert block.branch_dropout.rate == (0.3 if residual_dropout else 0.0)
    assert block.feed_forward.inner_dropout.rate == (0.3 if feed_forward_dropout else 0.0)
    assert block.self_attention.attention_dropout.rate == 0.3  # always on
    config = EncoderBlock.from_config(block.get_config()).get_config()
    assert config["residual_dropout"] is residual_dropout
    assert config["feed_forward_dropout"] is feed_forward_dropout


def test_training_is_deterministic_with_only_attention_dropout_and_rate_zero():
    # With every optional site off, dropout 0.3 on nothing but the attention weights;
    # setting that to 0 too must leave training mode equal to inference.
    block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=16, dropout=0.3,
                         residual_dropout=False, feed_forward_dropout=False)
    block.build(X.shape)
    block.self_attention.attention_dropout.rate = 0.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(block(X, training=True)),
        keras.ops.convert_to_numpy(block(X, training=False)), atol=1e-6)


def test_argument_errors():
    with pytest.raises(ValueError, match="ff_dim=0"):
        EncoderBlock(num_heads=2, head_dim=4, ff_dim=0)
