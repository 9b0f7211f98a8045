import numpy as np
import pytest

from kit.layers import TokenAndPositionEmbedding
from kit.layers.token_and_position_embedding import sinusoidal_positions
from tests.layer_test_helper import assert_kernels_differ, run_layer_test

IDS = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], dtype="int32")


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
def test_layer_contract(position_encoding):
    run_layer_test(TokenAndPositionEmbedding,
                   dict(vocab_size=10, max_length=6, embedding_dim=8,
                        position_encoding=position_encoding),
                   IDS, expected_output_shape=(2, 4, 8))


def test_learned_tables_start_different():
    layer = TokenAndPositionEmbedding(6, 6, 8, position_encoding="learned")  # both (6, 8)
    layer.build(IDS.shape)
    assert assert_kernels_differ(layer) == 1


def reference_table(length, dim):
    """The paper's formula, in float64 numpy:
    PE(p, 2i) = sin(p / 10000^(2i/D)), PE(p, 2i+1) = cos(p / 10000^(2i/D))."""
    table = np.zeros((length, dim))
    for p in range(length):
        for i in range(dim):
            angle = p / 10000.0 ** (2 * (i // 2) / dim)
            table[p, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    return table


def test_sinusoidal_hand_values():
    table = np.asarray(sinusoidal_positions(np.arange(3), 4))
    expected_p2 = [np.sin(2.0), np.cos(2.0), np.sin(2.0 / 100.0), np.cos(2.0 / 100.0)]
    np.testing.assert_allclose(table[2], expected_p2, rtol=1e-6)
    np.testing.assert_allclose(table[0], [0, 1, 0, 1])


@pytest.mark.parametrize("dim", [16, 7])
def test_sinusoidal_matches_the_formula(dim):
    np.testing.assert_allclose(np.asarray(sinusoidal_positions(np.arange(50), dim)),
                               reference_table(50, dim), atol=2e-5)


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
def test_start_position_matches_the_full_sequence(position_encoding):
    layer = TokenAndPositionEmbedding(10, 6, 8, position_encoding=position_encoding)
    full = np.asarray(layer(IDS))
    for t in range(IDS.shape[1]):
        np.testing.assert_allclose(np.asarray(layer(IDS[:, t:t + 1], start_position=t))[:, 0],
                                   full[:, t], atol=1e-6)


def test_token_part_is_scaled_by_sqrt_dim():
    layer = TokenAndPositionEmbedding(10, 6, 16)
    out = np.asarray(layer(IDS))
    tokens = np.asarray(layer.token_embedding.embeddings)[IDS] * 4.0
    np.testing.assert_allclose(out - tokens, np.broadcast_to(reference_table(4, 16), out.shape),
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(vocab_size=0, max_length=6, embedding_dim=8), "vocab_size=0"),
    (dict(vocab_size=10, max_length=0, embedding_dim=8), "max_length=0"),
    (dict(vocab_size=10, max_length=6, embedding_dim=8, position_encoding="rope"),
     "position_encoding='rope'"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenAndPositionEmbedding(**kwargs)
