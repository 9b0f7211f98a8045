import keras
import numpy as np
import pytest

from kit.layers import EncoderBlock
from tests.layer_test_helper import run_layer_test

RNG = np.random.default_rng(4)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype="float32")


@pytest.mark.parametrize("norm_first", [True, False])
def test_layer_contract(norm_first):
    run_layer_test(EncoderBlock, dict(num_heads=2, head_dim=4, ff_dim=16, dropout=0.1,
                                      norm_first=norm_first),
                   (X, MASK), expected_output_shape=X.shape)


@pytest.mark.parametrize("norm_first", [True, False])
def test_appending_padding_changes_no_real_position(norm_first):
    block = EncoderBlock(num_heads=2, head_dim=4, ff_dim=16, norm_first=norm_first)
    out = keras.ops.convert_to_numpy(block(X[:1, :3], padding_mask=MASK[:1, :3]))
    padded = keras.ops.convert_to_numpy(block(X[:1], padding_mask=MASK[:1]))
    np.testing.assert_allclose(padded[:, :3], out, atol=1e-5)


def test_argument_errors():
    with pytest.raises(ValueError, match="ff_dim=0"):
        EncoderBlock(num_heads=2, head_dim=4, ff_dim=0)
