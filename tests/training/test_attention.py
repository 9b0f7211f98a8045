"""python -m kit attention: the picture shows the model's own weights, of every kind."""

import numpy as np
import pytest

from training.attention import AttentionError, attention_picture, main
from training.run_dir import load_keras, load_tokenizers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_keras(tiny_run / "model.keras"), load_tokenizers(tiny_run)


@pytest.mark.parametrize("kind", ["cross", "decoder", "encoder"])
def test_the_weights_drawn_are_the_models(run, kind):
    model, tokenizers = run
    text = "Sun 29 Nov 2026"
    picture = attention_picture(model, tokenizers, text, kind)
    source = tokenizers.source.encode(text)
    n = len(picture.rows) if kind != "encoder" else len(source)
    assert picture.weights.shape == (model.config.num_heads, len(picture.rows),
                                     len(picture.columns))
    np.testing.assert_allclose(picture.weights.sum(-1), 1.0, atol=1e-5)  # rows sum to one
    if kind == "decoder":
        assert np.triu(picture.weights, k=1).max() == 0.0  # masked: no later token
        assert picture.columns[0] == "<s>"  # the decoder reads BOS first
    if kind != "decoder":
        # The source's labels are the source tokenizer's.
        assert picture.columns == [tokenizers.source.decode([t]) for t in source]
    # The same numbers straight from the model, for the decoded output (the target
    # tokenizer's ids: its vocabulary is not the source's).
    fed = [tokenizers.target.bos_id] + [tokenizers.target.encode(c)[0] for c in picture.output]
    assert tokenizers.source.vocabulary != tokenizers.target.vocabulary
    weights = np.asarray(model.attention_weights(np.array([source]),
                                                 np.array([fed[:n]]))[kind])[0, -1]
    np.testing.assert_allclose(picture.weights, weights, atol=1e-6)
    assert picture.output in picture.title and f"layer {1}" in picture.title


def test_the_command_writes_a_png(tiny_run, tmp_path, capsys):
    import matplotlib.image

    out = tmp_path / "a.png"
    assert main([str(tiny_run), "1 May 1990", "--out", str(out), "--kind", "encoder"]) == 0
    height, width, _ = matplotlib.image.imread(str(out)).shape
    assert height > 200 and width > 400
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["", ], "TEXT is empty"),
    (["x", "--layer", "3"], "--layer must be from 1 to 1"),
    (["x", "--out", "a.jpg"], "must name a .png"),
])
def test_bad_input(tiny_run, tmp_path, capsys, args, message):
    assert main([str(tiny_run), *args]) == 1
    assert message in capsys.readouterr().err


def test_unknown_kind_is_refused(run):
    with pytest.raises(AttentionError, match="--kind"):
        attention_picture(*run, "x", "sideways")


@pytest.mark.parametrize("args", [["", ], ["x", "--layer", "3"],
                                  ["x", "--kind", "decoder", "--layer", "0"]])
def test_the_request_is_checked_before_the_model_is_loaded(tiny_run, capsys, monkeypatch,
                                                           args):
    """--layer and TEXT are checked against run.json: a wrong one costs no model load."""
    import training.run_dir as rd

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(rd, "load_keras", no_loading)
    assert main([str(tiny_run), *args]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize("args", [["--kind", "bogus"], ["--layer", "abc"]])
def test_usage_errors_are_one_line(tiny_run, capsys, args):
    with pytest.raises(SystemExit) as stop:
        main([str(tiny_run), "x", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
