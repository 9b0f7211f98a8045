"""kit/plots.py: real PNG files of the expected size, and the panels drawn are the
weights given plus their mean."""

import numpy as np
import pytest

from kit.plots import attention_figure, training_curves_figure


def _png_size(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path)).shape  # (height, width, channels)


def test_attention_figure_draws_each_head_and_their_mean(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.random((2, 3, 5)).astype(np.float32)
    weights /= weights.sum(-1, keepdims=True)
    path = tmp_path / "a.png"
    panels = attention_figure(weights, ["a", "b", "</s>"], list("hello"), "title", path)
    np.testing.assert_allclose(panels[:2], weights)
    np.testing.assert_allclose(panels[2], weights.mean(0), rtol=1e-6)
    height, width, channels = _png_size(path)
    assert channels in (3, 4) and 150 < height < 2000 and 300 < width < 4000
    # More source tokens make a wider picture.
    wide = np.full((2, 3, 40), 1 / 40, np.float32)
    attention_figure(wide, ["a", "b", "c"], ["x"] * 40, "t", tmp_path / "w.png")
    assert _png_size(tmp_path / "w.png")[1] > width


def test_attention_figure_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, 2, 3\)"):
        attention_figure(np.ones((1, 3, 3)), ["a", "b"], ["x", "y", "z"], "t", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_training_curves(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1.1 / e, "token_accuracy": 0.5,
                "val_token_accuracy": 0.4} for e in (1, 2, 3)]
    training_curves_figure(history, "run", tmp_path / "c.png")
    height, width, _ = _png_size(tmp_path / "c.png")
    assert width > height > 100
    with pytest.raises(ValueError, match="no epochs"):
        training_curves_figure([], "run", tmp_path / "d.png")
