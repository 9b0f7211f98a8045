import numpy as np
import pytest

from kit.layers import FeedForward
from tests.layer_test_helper import assert_kernels_differ, run_layer_test

X = np.random.default_rng(3).normal(size=(2, 5, 8)).astype("float32")


def test_layer_contract():
    run_layer_test(FeedForward, dict(hidden_dim=16, dropout=0.1), X, expected_output_shape=X.shape)


def test_kernels_start_different():
    layer = FeedForward(hidden_dim=8)  # inner and outer kernels both (8, 8)
    layer.build(X.shape)
    assert assert_kernels_differ(layer) == 1


def test_hand_computed_value():
    layer = FeedForward(hidden_dim=2)
    layer.build((1, 1, 2))
    layer.inner.kernel.assign([[1.0, -1.0], [0.5, 2.0]])
    layer.inner.bias.assign([0.0, 1.0])
    layer.outer.kernel.assign([[1.0, 0.0], [1.0, 3.0]])
    layer.outer.bias.assign([0.5, 0.0])
    # inner: relu([1*2 + 0.5*1, -1*2 + 2*1 + 1]) = [2.5, 1]; outer: [2.5 + 1 + 0.5, 3]
    np.testing.assert_allclose(np.asarray(layer(np.array([[[2.0, 1.0]]], "float32"))),
                               [[[4.0, 3.0]]], atol=1e-6)


def test_argument_errors():
    with pytest.raises(ValueError, match="hidden_dim=0"):
        FeedForward(hidden_dim=0)
