"""benchmarks/ct2_port.py: a kit model ported to CTranslate2 decodes the same ids and
gives the same log-probabilities as the Keras model (float32), in every architecture
the config offers (pre-LN and post-LN, sinusoidal and learned positions)."""

import keras
import numpy as np
import pytest

pytest.importorskip("ctranslate2")

from benchmarks import ct2_port  # noqa: E402
from kit.models import Seq2SeqTransformer, preset  # noqa: E402
from kit.tokenizers import BOS_ID, EOS_ID  # noqa: E402


def sharpened_model(name, **overrides):
    """Random weights, seeded, with the logits made 10x larger: near-uniform logits
    would leave greedy decoding to float32 round-off between near-ties."""
    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer(preset(name, dropout=0.0, **overrides))
    model.build()
    kernel = model.output_projection.kernel
    kernel.assign(kernel * 10.0)
    return model


def random_sources(config, count, seed=1):
    """Right-padded rows of 1 to S ids, no special ids."""
    rng = np.random.default_rng(seed)
    sources = np.zeros((count, config.max_source_length), np.int32)
    for row in sources:
        length = rng.integers(1, config.max_source_length + 1)
        row[:length] = rng.integers(4, config.source_vocab_size, length)
    return sources


ARCHITECTURES = [
    ("tiny", dict(source_vocab_size=40, target_vocab_size=30)),  # post-LN, sinusoidal
    ("tiny", dict(norm_first=True, position_encoding="learned", layer_norm_epsilon=0.25)),
    ("small", dict(norm_first=False, position_encoding="sinusoidal")),
    ("small", dict(norm_first=True, position_encoding="learned", source_vocab_size=100,
                   target_vocab_size=60)),
]


@pytest.mark.parametrize("name, overrides", ARCHITECTURES)
def test_ported_model_decodes_and_scores_as_keras(tmp_path, name, overrides):
    model = sharpened_model(name, **overrides)
    config = model.config
    translator = ct2_port.load(ct2_port.port(model, tmp_path / "ct2"))
    sources = random_sources(config, 10)
    result = ct2_port.check_equal(model, translator, sources, BOS_ID, EOS_ID,
                                  config.max_target_length - 1)
    assert result["matched"] == result["total"] == 10
    assert result["max_abs_logprob_diff"] < 1e-4


def test_greedy_scores_and_forced_length(tmp_path):
    model = sharpened_model("tiny", norm_first=True, position_encoding="learned")
    translator = ct2_port.load(ct2_port.port(model, tmp_path / "ct2"))
    sources = random_sources(model.config, 10)
    ids, scores = ct2_port.ct2_greedy(translator, sources, BOS_ID, EOS_ID, 11,
                                      return_scores=True)
    assert [len(row) for row in scores] == [len(row) for row in ids]
    assert any(len(row) < 11 and row[-1] == EOS_ID for row in ids)  # EOS kept
    # EOS as the very first token, as the kit allows it (CTranslate2's default
    # min_decoding_length=1 would hold it back and renormalize the first step).
    assert [EOS_ID] in ids
    expected = ct2_port.keras_log_probs(model, sources, ids, BOS_ID)
    np.testing.assert_allclose(np.concatenate(scores), np.concatenate(expected), atol=1e-4)
    forced = ct2_port.ct2_forced(translator, sources, 11)
    assert [len(row) for row in forced] == [11] * 10


def test_int8_port_loads_and_stays_close(tmp_path):
    model = sharpened_model("tiny")
    translator = ct2_port.load(ct2_port.port(model, tmp_path / "int8", quantization="int8"))
    result = ct2_port.check_equal(model, translator, random_sources(model.config, 4),
                                  BOS_ID, EOS_ID, 11)
    assert result["total"] == 4 and result["max_abs_logprob_diff"] < 0.5


def test_tokens_round_trip_with_the_kit_special_ids():
    tokens = ct2_port.ids_to_tokens([0, 1, 2, 3, 4, 31], "target")
    assert tokens == ["<blank>", "<unk>", "<s>", "</s>", "t4", "t31"]
    assert ct2_port.tokens_to_ids(tokens, "target") == [0, 1, 2, 3, 4, 31]
    for bad in ("t2", "x4", "t", "t04"):
        with pytest.raises(ValueError, match="not a token"):
            ct2_port.tokens_to_ids([bad], "source")
    with pytest.raises(ValueError, match="side"):
        ct2_port.ids_to_tokens([4], "both")


def test_what_cannot_be_ported_says_why(tmp_path):
    model = Seq2SeqTransformer(preset("tiny", attention_mask_value=-30.0))
    model.build()
    with pytest.raises(ValueError, match="attention_mask_value"):
        ct2_port.port(model, tmp_path / "masked")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        ct2_port.port(sharpened_model("tiny"), tmp_path)
    # Checked before CTranslate2 is called: no translator needed.
    with pytest.raises(ValueError, match="empty"):
        ct2_port.ct2_greedy(None, [[0, 0]], BOS_ID, EOS_ID, 3)
    with pytest.raises(ValueError, match="before its last token"):
        ct2_port.ct2_greedy(None, [[5, 0, 6]], BOS_ID, EOS_ID, 3)
    with pytest.raises(ValueError, match="bos_id"):
        ct2_port.ct2_greedy(None, [[5]], 7, EOS_ID, 3)
