import keras
import numpy as np
import pytest

from kit.layers import EncoderDecoderAttention
from tests.layer_test_helper import (
    assert_kernels_differ,
    copy_into_multi_head_attention,
    run_layer_test,
)

RNG = np.random.default_rng(2)
X = RNG.normal(size=(2, 4, 8)).astype("float32")
CONTEXT = RNG.normal(size=(2, 6, 8)).astype("float32")
CONTEXT_MASK = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype="float32")


def np_(t):
    return keras.ops.convert_to_numpy(t)


def test_layer_contract():
    run_layer_test(EncoderDecoderAttention, dict(num_heads=2, head_dim=4, dropout=0.1),
                   (X, CONTEXT, CONTEXT_MASK), expected_output_shape=X.shape)


def test_layer_contract_per_head_fans():
    run_layer_test(EncoderDecoderAttention, dict(num_heads=2, head_dim=4, per_head_fans=True),
                   (X, CONTEXT, CONTEXT_MASK), expected_output_shape=X.shape,
                   run_mixed_precision=False)


@pytest.mark.parametrize("per_head_fans", [False, True])
def test_kernels_start_different(per_head_fans):
    layer = EncoderDecoderAttention(num_heads=2, head_dim=4, per_head_fans=per_head_fans)
    layer.build(X.shape, CONTEXT.shape)
    assert assert_kernels_differ(layer) == 6  # W^Q, W^K, W^V, W^O: all (8, 8)


@pytest.mark.parametrize("padded", [False, True])
def test_same_as_keras_multi_head_attention(padded):
    layer = EncoderDecoderAttention(num_heads=2, head_dim=4)
    layer.build(X.shape, CONTEXT.shape)
    rng = np.random.default_rng(8)
    for bias in (layer.qkv.query_bias, layer.qkv.key_bias, layer.qkv.value_bias,
                 layer.output_dense.bias):
        bias.assign(rng.normal(size=bias.shape).astype("float32"))
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    mha.build(X.shape, CONTEXT.shape)
    copy_into_multi_head_attention(layer, mha)
    # Every source keeps at least 3 real tokens: no query row is fully masked.
    mask = CONTEXT_MASK if padded else None
    attention_mask = None if mask is None else np.broadcast_to(
        CONTEXT_MASK[:, None, :] > 0, (2, 4, 6))  # (B, T, S)
    out, weights = layer(X, CONTEXT, context_padding_mask=mask, return_attention_scores=True)
    expected, expected_weights = mha(X, CONTEXT, attention_mask=attention_mask,
                                     return_attention_scores=True)
    np.testing.assert_allclose(np_(weights), np_(expected_weights), atol=1e-5)
    np.testing.assert_allclose(np_(out), np_(expected), atol=1e-5)


def test_query_from_decoder_key_value_from_encoder():
    layer = EncoderDecoderAttention(num_heads=2, head_dim=4)
    out, weights = layer(X, CONTEXT, return_attention_scores=True)
    assert np_(weights).shape == (2, 2, 4, 6)  # (B, H, T, S)
    # Each target position is computed on its own: no causal or cross-position coupling.
    np.testing.assert_allclose(np_(layer(X[:, 2:3], CONTEXT))[:, 0], np_(out)[:, 2], atol=1e-6)
    # Changing the encoder output changes the result; the decoder side shapes the query only.
    assert not np.allclose(np_(layer(X, CONTEXT * 2.0)), np_(out))


def test_padded_source_positions_get_no_attention_and_appending_padding_changes_nothing():
    layer = EncoderDecoderAttention(num_heads=2, head_dim=4)
    out, weights = layer(X, CONTEXT, context_padding_mask=CONTEXT_MASK,
                         return_attention_scores=True)
    assert np_(weights)[0, :, :, 3:].max() == 0.0
    np.testing.assert_allclose(np_(weights).sum(-1), 1.0, atol=1e-5)
    longer = np.concatenate([CONTEXT, RNG.normal(size=(2, 3, 8)).astype("float32")], axis=1)
    longer_mask = np.concatenate([CONTEXT_MASK, np.zeros((2, 3), "float32")], axis=1)
    np.testing.assert_allclose(np_(layer(X, longer, context_padding_mask=longer_mask)),
                               np_(out), atol=1e-5)


def test_precomputed_keys_and_values_give_the_same_output():
    layer = EncoderDecoderAttention(num_heads=2, head_dim=4)
    out = np_(layer(X, CONTEXT, context_padding_mask=CONTEXT_MASK))
    key, value = layer.project_context(CONTEXT)
    np.testing.assert_allclose(np_(layer.attend_to(X, key, value, CONTEXT_MASK)), out, atol=1e-6)


def test_the_decoding_layout_gives_the_same_output_one_token_at_a_time():
    layer = EncoderDecoderAttention(num_heads=2, head_dim=4)
    out = np_(layer(X, CONTEXT, context_padding_mask=CONTEXT_MASK))
    key, value = layer.project_context_for_decoding(CONTEXT)
    S = CONTEXT.shape[1]
    assert tuple(key.shape) == tuple(value.shape) == (2, 2, S, 4)  # (B, H, S, Dh)
    for t in range(X.shape[1]):
        step = layer.attend_cached_to(X[:, t:t + 1], key, value, CONTEXT_MASK)
        np.testing.assert_allclose(np_(step)[:, 0], out[:, t], atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_heads=2, head_dim=0), "head_dim=0"),
    (dict(num_heads=2, head_dim=4, dropout=2), "dropout=2"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EncoderDecoderAttention(**kwargs)
