import keras
import numpy as np

from kit.layers._initializers import PerHeadShape, clone_initializer


def test_a_shared_unseeded_initializer_repeats_itself_and_a_clone_does_not():
    # Why every kernel takes its own copy (keras random_initializers docstring).
    shared = keras.initializers.GlorotUniform()
    np.testing.assert_array_equal(np.asarray(shared((8, 8))), np.asarray(shared((8, 8))))
    copy = clone_initializer(shared)
    assert not np.allclose(np.asarray(copy((8, 8))), np.asarray(shared((8, 8))))


def test_per_head_shape_draws_the_3d_shape_and_survives_serialization():
    initializer = PerHeadShape("glorot_uniform", (64, 4, 16))
    values = np.asarray(initializer((64, 64)))
    assert values.shape == (64, 64)
    limit = np.sqrt(6.0 / (64 * 4 + 64 * 16))  # Keras fans of (64, 4, 16)
    assert limit * 0.99 < np.abs(values).max() <= limit
    revived = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    assert isinstance(revived, PerHeadShape) and revived.per_head_shape == (64, 4, 16)
    assert np.abs(np.asarray(revived((64, 64)))).max() <= limit
