import numpy as np
import pytest

from kit.layers import TokenAndPositionEmbedding
from kit.layers.token_and_position_embedding import sinusoidal_table
from tests.layer_test_helper import run_layer_test

IDS = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], dtype="int32")


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
def test_layer_contract(position_encoding):
    run_layer_test(TokenAndPositionEmbedding,
                   dict(vocab_size=10, max_length=6, embedding_dim=8,
                        position_encoding=position_encoding),
                   IDS, expected_output_shape=(2, 4, 8))


def test_sinusoidal_table_hand_values():
    table = sinusoidal_table(3, 4)
    # position p, channel pair i: sin(p / 10000^(2i/4)), cos(...)
    expected_p2 = [np.sin(2.0), np.cos(2.0), np.sin(2.0 / 100.0), np.cos(2.0 / 100.0)]
    np.testing.assert_allclose(table[2], expected_p2, rtol=1e-6)
    np.testing.assert_allclose(table[0], [0, 1, 0, 1])


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
    np.testing.assert_allclose(out - tokens, np.broadcast_to(sinusoidal_table(6, 16)[:4], out.shape),
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
