"""A `.keras` file saved by kit v0.1, before the architecture options existed, still
loads as the model it was and decodes the same."""

from pathlib import Path

import keras
import numpy as np

from kit.models import Seq2SeqTransformer
from kit.models.config import LEGACY

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_v0_1_file_loads_and_decodes_the_same():
    model = keras.saving.load_model(FIXTURES / "legacy_tiny_v0.1.keras", compile=False)
    expected = np.load(FIXTURES / "legacy_tiny_v0.1.npz")
    assert isinstance(model, Seq2SeqTransformer)
    # The saved config lacks the new fields: they must mean what v0.1 built.
    for name, value in LEGACY.items():
        assert getattr(model.config, name) == value, name
    assert model.config.norm_first
    ids, logits = model.greedy_decode(expected["source"], bos_id=2, eos_id=3,
                                      return_logits=True)
    np.testing.assert_array_equal(ids, expected["ids"])
    np.testing.assert_allclose(logits, expected["logits"], atol=1e-5)
    # The dropout sites it was trained with are on again (the file's dropout is 0.1).
    block = model.encoder_blocks[0]
    assert block.branch_dropout.rate == 0.1 and block.feed_forward.inner_dropout.rate == 0.1
