import numpy as np
import pytest

from kit.layers import QKVProjection
from tests.layer_test_helper import run_layer_test

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
CONTEXT = RNG.normal(size=(2, 7, 6)).astype("float32")


def test_layer_contract_self():
    run_layer_test(QKVProjection, dict(num_heads=2, head_dim=3), X,
                   expected_output_shape=(2, 5, 2, 3))


def test_layer_contract_cross():
    run_layer_test(QKVProjection, dict(num_heads=2, head_dim=3), (X, CONTEXT),
                   expected_output_shape=(2, 5, 2, 3))


def test_values_are_inputs_times_the_learned_matrices():
    layer = QKVProjection(num_heads=2, head_dim=3, use_bias=False)
    q, k, v = (np.asarray(t) for t in layer(X, CONTEXT))
    wq, wk, wv = (np.asarray(w) for w in (layer.query_kernel, layer.key_kernel,
                                          layer.value_kernel))
    np.testing.assert_allclose(q, (X @ wq).reshape(2, 5, 2, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(k, (CONTEXT @ wk).reshape(2, 7, 2, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, (CONTEXT @ wv).reshape(2, 7, 2, 3), rtol=1e-5, atol=1e-6)


def test_fused_self_projection_equals_separate_projections():
    layer = QKVProjection(num_heads=2, head_dim=4)
    layer.build(X.shape)
    layer.query_bias.assign(RNG.normal(size=8))
    layer.value_bias.assign(RNG.normal(size=8))
    fused = layer(X)
    separate = (layer.project_query(X),) + layer.project_key_value(X)
    for a, b in zip(fused, separate):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_heads=0, head_dim=4), "num_heads=0"),
    (dict(num_heads=2, head_dim=-1), "head_dim=-1"),
    (dict(num_heads=2.5, head_dim=4), "num_heads=2.5"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QKVProjection(**kwargs)
