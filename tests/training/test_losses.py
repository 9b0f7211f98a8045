import keras
import numpy as np
import pytest

from training.losses import SmoothedSparseCrossentropy, WarmupInverseSqrt

LOGITS = np.array([[[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]], "float32")  # (B=1, T=2, V=3)
LABELS = np.array([[1, 0]])


def test_without_smoothing_equals_keras_sparse_crossentropy_over_real_tokens():
    weights = (LABELS != 0).astype("float32")
    ours = float(SmoothedSparseCrossentropy(0.0)(LABELS, LOGITS, sample_weight=weights))
    expected = -np.log(np.exp(0.5) / np.exp(LOGITS[0, 0]).sum())  # only position 0 is real
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_label_smoothing_hand_value():
    loss = SmoothedSparseCrossentropy(0.3, reduction=None)(LABELS, LOGITS)
    log_p = LOGITS[0, 0] - np.log(np.exp(LOGITS[0, 0]).sum())
    target = np.array([0.1, 0.8, 0.1])  # 0.7 on the label + 0.3 / 3 everywhere
    np.testing.assert_allclose(float(np.asarray(loss)[0, 0]), -(target * log_p).sum(), rtol=1e-5)


def test_serialization_round_trip():
    loss = SmoothedSparseCrossentropy(0.1)
    revived = keras.losses.deserialize(keras.losses.serialize(loss))
    assert revived.label_smoothing == 0.1
    schedule = WarmupInverseSqrt(64, 100)
    assert keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)).get_config() == schedule.get_config()


def test_warmup_schedule_rises_then_decays():
    schedule = WarmupInverseSqrt(64, warmup_steps=100)
    values = [float(schedule(step)) for step in (0, 49, 99, 399)]
    assert values[0] < values[1] < values[2] > values[3]
    np.testing.assert_allclose(values[2], 64 ** -0.5 * 100 ** -0.5, rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        SmoothedSparseCrossentropy(1.5)
    with pytest.raises(ValueError, match="warmup_steps=0"):
        WarmupInverseSqrt(64, 0)
