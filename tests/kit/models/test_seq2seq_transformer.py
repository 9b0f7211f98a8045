import keras
import numpy as np
import pytest

from kit.models import Seq2SeqTransformer, TransformerConfig, preset
from kit.models.config import LEGACY
from tests.layer_test_helper import assert_kernels_differ

RNG = np.random.default_rng(6)
SOURCE = np.array([[5, 6, 7, 8, 9, 0, 0], [10, 11, 12, 13, 14, 15, 16]], dtype="int32")
TARGET = np.array([[2, 8, 9, 10, 11, 12], [2, 4, 5, 6, 7, 3]], dtype="int32")


def np_(t):
    return keras.ops.convert_to_numpy(t)


def make(**overrides):
    return Seq2SeqTransformer(preset("tiny", **overrides))


def test_logits_shape_and_dtype():
    logits = make()((SOURCE, TARGET))
    assert tuple(logits.shape) == (2, 6, 32)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


def test_causality_over_target_positions():
    model = make()
    reference = np_(model((SOURCE, TARGET)))
    for t in range(TARGET.shape[1] - 1):
        changed = TARGET.copy()
        changed[:, t + 1:] = RNG.integers(4, 32, size=changed[:, t + 1:].shape)
        out = np_(model((SOURCE, changed)))
        np.testing.assert_allclose(out[:, :t + 1], reference[:, :t + 1], atol=1e-5)


def test_appending_source_padding_changes_nothing():
    model = make()
    short = np_(model((SOURCE[:1, :5], TARGET[:1])))
    padded = np.concatenate([SOURCE[:1], np.zeros((1, 9), "int32")], axis=1)  # S = 16
    np.testing.assert_allclose(np_(model((padded, TARGET[:1]))), short, atol=1e-5)


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(norm_first=False),
    dict(position_encoding="learned", num_decoder_layers=2, num_encoder_layers=2),
])
def test_cached_decoding_equals_one_full_pass(overrides):
    model = make(**overrides)
    T = model.config.max_target_length
    target = RNG.integers(4, 32, size=(2, T)).astype("int32")
    target[:, 0] = 2
    full = np_(model((SOURCE, target)))
    encoded = model.encode(SOURCE)
    cache = model.init_cache(2)
    L = model.config.num_decoder_layers
    assert sorted(cache) == sorted(f"self_{kind}_{i}" for i in range(L)
                                   for kind in ("key", "value"))
    shapes = model.cache_shapes(2)
    assert all(tuple(cache[name].shape) == shapes[name] == (2, 4, T, 8) for name in cache)
    for t in range(T):
        logits, cache = model.decode_step(target[:, t:t + 1], t, cache, encoded)
        np.testing.assert_allclose(np_(logits), full[:, t], atol=1e-5)


@pytest.mark.parametrize("attention_initializer", ["glorot_uniform", "glorot_uniform_per_head"])
def test_kernels_start_different(attention_initializer):
    model = make(attention_initializer=attention_initializer, position_encoding="learned")
    model.build()
    assert assert_kernels_differ(model) > 100  # (32, 32): embeddings and attention kernels


def test_architecture_options_reach_the_layers():
    model = make(dropout=0.2, norm_first=False, attention_initializer="glorot_uniform_per_head",
                 residual_dropout=False, feed_forward_dropout=True)
    model.build()
    for block in model.encoder_blocks + model.decoder_blocks:
        assert not block.norm_first and block.per_head_fans
        assert block.branch_dropout.rate == 0.0 and block.feed_forward.inner_dropout.rate == 0.2
    assert model.decoder_blocks[0].cross_attention.qkv.per_head_fans
    # Per-head fans: the (32, 32) kernels' Glorot limit is sqrt(6 / (32 * (4 + 8))).
    kernel = np.asarray(model.encoder_blocks[0].self_attention.qkv.query_kernel)
    assert np.abs(kernel).max() <= np.sqrt(6.0 / (32 * 12)) < np.sqrt(6.0 / 64)


def test_encode_outputs():
    model = make(num_decoder_layers=2)
    encoded = model.encode(SOURCE)
    np.testing.assert_array_equal(np_(encoded["source_mask"]), (SOURCE != 0).astype("float32"))
    assert sorted(encoded) == ["cross_key_0", "cross_key_1", "cross_value_0", "cross_value_1",
                               "source_mask"]
    assert all(tuple(encoded[f"cross_key_{i}"].shape) == (2, 4, 7, 8)  # (B, H, S, Dh)
               for i in (0, 1))
    assert all(tuple(encoded[f"cross_value_{i}"].shape) == (2, 4, 7, 8)  # (B, H, S, Dh)
               for i in (0, 1))


def test_greedy_decode_matches_argmax_of_full_passes():
    model = make()
    generated = model.greedy_decode(SOURCE, bos_id=2, eos_id=3, max_new_tokens=5)
    assert generated.shape == (2, 5) and generated.dtype == np.int32
    for row in range(2):
        prefix = [2]
        for step in range(5):
            logits = np_(model((SOURCE[row:row + 1], np.array([prefix], "int32"))))
            token = int(np.argmax(logits[0, -1]))
            assert generated[row, step] == token
            if token == 3:
                assert not generated[row, step + 1:].any()
                break
            prefix.append(token)


def test_sample_decode_draws_with_its_sampler():
    from kit.decoding import TopK, TopP

    model = make()
    greedy = model.greedy_decode(SOURCE, 2, 3, max_new_tokens=5)
    # One allowed token is the argmax: sampling among it is greedy decoding.
    np.testing.assert_array_equal(
        model.sample_decode(SOURCE, 2, 3, TopK(1, seed=0), max_new_tokens=5), greedy)
    draws = [model.sample_decode(SOURCE, 2, 3, TopP(1.0, temperature=3.0, seed=7),
                                 max_new_tokens=5) for _ in range(2)]
    np.testing.assert_array_equal(draws[0], draws[1])


def test_max_new_tokens_is_bounded_by_the_cache():
    model = make(max_target_length=6)
    with pytest.raises(ValueError, match=r"max_new_tokens=6"):
        model.greedy_decode(SOURCE, 2, 3, max_new_tokens=6)
    assert model.greedy_decode(SOURCE, 2, 3).shape == (2, 5)


def test_greedy_decode_returns_the_logits_it_chose_from():
    model = make()
    ids, logits = model.greedy_decode(SOURCE, 2, 3, max_new_tokens=5, return_logits=True)
    np.testing.assert_array_equal(ids, model.greedy_decode(SOURCE, 2, 3, max_new_tokens=5))
    assert logits.shape == (2, 5, 32) and logits.dtype == np.float32
    full = np_(model((SOURCE, np.concatenate([np.full((2, 1), 2), ids[:, :4]], 1))))
    steps = (ids != 0).sum(1)  # rows stop at EOS; later logits are for padding inputs
    for row in range(2):
        n = min(int(steps[row]), 5)
        np.testing.assert_allclose(logits[row, :n], full[row, :n], atol=1e-5)
        live = ids[row, :n] != 0
        np.testing.assert_array_equal(logits[row, :n].argmax(-1)[live], ids[row, :n][live])


def test_cross_attention_weights():
    model = make(num_decoder_layers=2)
    weights = np_(model.attention_weights(SOURCE, TARGET)["cross"])
    assert weights.shape == (2, 2, 4, 6, 7)  # (B, L, H, T, S)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert weights[0, ..., 5:].max() == 0.0


def test_keras_file_round_trip(tmp_path):
    model = make(dropout=0.1)
    before = np_(model((SOURCE, TARGET)))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Seq2SeqTransformer) and loaded.config == model.config
    np.testing.assert_array_equal(np_(loaded((SOURCE, TARGET))), before)
    np.testing.assert_array_equal(loaded.greedy_decode(SOURCE, 2, 3),
                                  model.greedy_decode(SOURCE, 2, 3))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_weights_and_logits(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = make()
    logits = model((SOURCE, TARGET))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert all(w.dtype == "float32" for w in model.weights)
    assert np.all(np.isfinite(np_(logits)))
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit((SOURCE, TARGET), TARGET, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # Cached decoding runs in the compute dtype and still agrees with the full pass.
    full = np_(model((SOURCE, TARGET)))
    encoded, cache = model.encode(SOURCE), model.init_cache(2)
    logits, _ = model.decode_step(TARGET[:, :1], 0, cache, encoded)
    np.testing.assert_allclose(np_(logits), full[:, 0],
                               atol=0.05 if policy.endswith("16") else 1e-5)


def test_one_training_step_lowers_the_loss():
    model = make()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit((SOURCE, TARGET[:, :-1]), TARGET[:, 1:], epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("overrides, message", [
    (dict(model_dim=30, num_heads=4), "num_heads=4, model_dim=30"),
    (dict(dropout=-0.5), "dropout=-0.5"),
    (dict(max_target_length=0), "max_target_length=0"),
    (dict(position_encoding="alibi"), "position_encoding='alibi'"),
    (dict(num_encoder_layers=0), "num_encoder_layers=0"),
    (dict(attention_initializer="he_normal"), "attention_initializer='he_normal'"),
    (dict(residual_dropout="no"), "residual_dropout='no'"),
    (dict(norm_first=1), "norm_first=1"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        preset("tiny", **overrides)


def test_unknown_preset_and_bad_config():
    with pytest.raises(ValueError, match="preset='huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="config=3"):
        Seq2SeqTransformer(3)
    with pytest.raises(ValueError, match="Unknown TransformerConfig field"):
        TransformerConfig.from_dict({"layers": 3})


def test_saved_configs_without_the_new_fields_get_the_old_architecture():
    saved = preset("tiny").to_dict()
    for name in LEGACY:
        del saved[name]
    config = TransformerConfig.from_dict(saved)
    assert config.attention_initializer == "glorot_uniform"
    assert config.residual_dropout is True and config.feed_forward_dropout is True
    # A config saved with the fields keeps them, whatever LEGACY says.
    assert TransformerConfig.from_dict(preset("tiny").to_dict()) == preset("tiny")


def test_new_configs_get_the_measured_defaults():
    # Chosen by benchmarks/train_speed.py (benchmarks/README.md), unlike LEGACY.
    for config in (TransformerConfig(), preset("small")):
        assert not config.norm_first
        assert config.attention_initializer == "glorot_uniform_per_head"
        assert not config.residual_dropout and not config.feed_forward_dropout


def test_presets():
    assert preset("base").num_encoder_layers == 4 and preset("base").model_dim == 128
    assert preset("base").num_heads == 8 and preset("base").ff_dim == 512
    assert preset("base").dropout == 0.1
    assert preset("small", target_vocab_size=50).target_vocab_size == 50


def test_attention_weights_of_every_kind():
    model = make(num_encoder_layers=2, num_decoder_layers=2)
    weights = {k: np_(v) for k, v in model.attention_weights(SOURCE, TARGET).items()}
    assert weights["encoder"].shape == (2, 2, 4, 7, 7)  # (B, L, H, S, S)
    assert weights["decoder"].shape == (2, 2, 4, 6, 6)  # (B, L, H, T, T)
    assert weights["cross"].shape == (2, 2, 4, 6, 7)  # (B, L, H, T, S)
    for kind, w in weights.items():
        np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5, err_msg=kind)
    assert np.triu(weights["decoder"], k=1).max() == 0.0
    assert weights["cross"][0, ..., 5:].max() == 0.0  # the first source's padding
    assert weights["encoder"][0, ..., 5:].max() == 0.0


def _log_prob(model, source, ids, bos=2):
    """log p(ids | source) from one full pass (teacher forced)."""
    inputs = np.array([[bos] + ids[:-1]], "int32")
    logits = np_(model((source[None], inputs)))[0].astype(np.float64)
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                keepdims=True)) - logits.max(-1, keepdims=True)
    return float(sum(log_probs[t, token] for t, token in enumerate(ids)))


def test_beam_decode_is_greedy_at_one_and_never_worse_at_four():
    from kit.decoding import until_eos

    model = make()
    greedy = model.greedy_decode(SOURCE, bos_id=2, eos_id=3, max_new_tokens=6)
    beams_of_one = model.beam_decode(SOURCE, bos_id=2, eos_id=3, beam_size=1, max_new_tokens=6)
    beams_of_four = model.beam_decode(SOURCE, bos_id=2, eos_id=3, beam_size=4, max_new_tokens=6,
                                      length_penalty=0.0)
    for row in range(2):
        path = until_eos(greedy[row], 3)
        assert beams_of_one[row][0].ids == path
        best = beams_of_four[row][0]
        # The beam's own score is the model's log-probability of its output ...
        assert best.log_prob == pytest.approx(_log_prob(model, SOURCE[row], best.ids), abs=1e-3)
        # ... and at least as high as greedy's among outputs of the same kind.
        if best.finished == (3 in path):
            assert best.log_prob >= _log_prob(model, SOURCE[row], path) - 1e-4
