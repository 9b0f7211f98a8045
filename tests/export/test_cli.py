"""export/cli.py: the bundle layout, the report, and one-line errors that leave nothing
behind."""

import json
import shutil

import pytest

from export import cli
from export.errors import ExportError
from kit.runtime import BUNDLE_JSON, REPORT_JSON, TFLITE_FILE
from kit.runtime.recipes import RECIPES
from training.run_dir import RUN_JSON

pytestmark = pytest.mark.slow



def _one_line_error(capsys, code, after_progress=False):
    """The error line; with `after_progress`, progress lines may come before it."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0
    assert "Traceback" not in captured.err
    if after_progress:
        assert all(not line.startswith("export: error") for line in lines[:-1]), captured.err
        assert lines[-1].startswith("export: error: "), captured.err
    else:
        assert len(lines) == 1, captured.err
    return lines[-1]


def _leftovers(directory):
    return sorted(path.name for path in directory.iterdir())


def test_all_writes_one_bundle_per_recipe_and_a_comparison(tiny_bundles):
    out, report = tiny_bundles
    assert (out / REPORT_JSON).is_file()
    assert json.loads((out / REPORT_JSON).read_text()) == json.loads(json.dumps(report))
    assert [row["recipe"] for row in report["recipes"]] == list(RECIPES)
    for recipe in RECIPES:
        files = sorted(path.name for path in (out / recipe).iterdir())
        assert files == sorted([TFLITE_FILE, "source_tokenizer.json", "target_tokenizer.json",
                                "source_vocab.txt", "target_vocab.txt", "bundle.txt",
                                BUNDLE_JSON, REPORT_JSON])
        assert set(files) <= cli.BUNDLE_FILES  # what --overwrite may replace
        row = json.loads((out / recipe / REPORT_JSON).read_text())
        for key in ("file_bytes", "size_ratio", "token_exact", "max_logit_diff", "scores",
                    "keras_scores", "ms_per_token", "gpu_compatible", "sentences",
                    "quantization", "op_types"):
            assert key in row, key
        assert row["sentences"] == 32
        if row["token_exact"] == 100.0:  # the same tokens give the same score
            assert row["scores"] == row["keras_scores"]
    rows = {row["recipe"]: row for row in report["recipes"]}
    assert rows["float32"]["size_ratio"] == 1.0
    assert rows["float32"]["token_exact"] == 100.0
    # The tiny run decodes many dates right (44% measured): the comparisons are about
    # real outputs, not a model that writes the same string for every input.
    assert rows["float32"]["keras_scores"]["exact_match"] > 25.0
    assert rows["float32"]["max_logit_diff"] < 1e-3
    assert rows["float16"]["token_exact"] >= 90.0
    assert isinstance(rows["float32"]["gpu_compatible"], bool)
    assert 0 < rows["dynamic_int8"]["size_ratio"] < rows["float16"]["size_ratio"] < 1


def test_notes_under_the_table_explain_int8(tiny_bundles):
    from export.verify import format_notes

    _, report = tiny_bundles
    rows = {row["recipe"]: row for row in report["recipes"]}
    lines = format_notes(report["recipes"])
    bias = rows["int8"]["quantization"]["attention_mask_value"]
    assert lines[0].startswith(f"int8: attention mask bias {bias:g} (run: -10000)")
    assert lines[1].startswith("int8: ops left in float32: ")
    assert "SOFTMAX" not in lines[1]
    assert len(lines) == 2  # the other recipes need no note


def test_single_recipe_is_written_at_the_top(tiny_run, tmp_path, capsys):
    out = tmp_path / "bundle"
    code = cli.main([str(tiny_run), "--recipe", "dynamic_int8", "--out", str(out),
                     "--samples", "4"])
    assert code == 0, capsys.readouterr().err
    spec = json.loads((out / BUNDLE_JSON).read_text())
    assert spec["recipe"] == "dynamic_int8"
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["sentences"] == 4 and report["size_ratio"] < 1.0
    assert report["source_run"] == str(tiny_run)
    stdout = capsys.readouterr().out
    assert "dynamic_int8" in stdout and "token-exact" in stdout
    assert _leftovers(tmp_path) == ["bundle"]

    # --overwrite replaces it; without it, the existing bundle is refused and kept.
    code = cli.main([str(tiny_run), "--recipe", "float16", "--out", str(out)])
    line = _one_line_error(capsys, code)
    assert "already exists" in line and "--overwrite" in line
    assert json.loads((out / BUNDLE_JSON).read_text())["recipe"] == "dynamic_int8"
    code = cli.main([str(tiny_run), "--recipe", "float16", "--out", str(out), "--overwrite",
                     "--samples", "2"])
    assert code == 0
    assert json.loads((out / BUNDLE_JSON).read_text())["recipe"] == "float16"
    assert _leftovers(tmp_path) == ["bundle"]


def test_unknown_recipe(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([str(tiny_run), "--recipe", "int4", "--out", str(tmp_path / "b")])
    assert stop.value.code == 2
    assert "invalid choice: 'int4'" in _one_line_error(capsys, stop.value.code)
    assert _leftovers(tmp_path) == []


def test_missing_run(tmp_path, capsys):
    code = cli.main([str(tmp_path / "no-run"), "--recipe", "float32",
                     "--out", str(tmp_path / "b")])
    assert "run directory not found" in _one_line_error(capsys, code)
    assert _leftovers(tmp_path) == []


def test_half_written_run(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / RUN_JSON).unlink()
    code = cli.main([str(run), "--recipe", "float32", "--out", str(tmp_path / "b")])
    assert "has no run.json" in _one_line_error(capsys, code)
    assert _leftovers(tmp_path) == ["run"]


def test_unfinished_run(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    info = json.loads((run / RUN_JSON).read_text())
    (run / RUN_JSON).write_text(json.dumps({**info, "complete": False}))
    code = cli.main([str(run), "--recipe", "float32", "--out", str(tmp_path / "b")])
    assert "unfinished run" in _one_line_error(capsys, code)
    assert _leftovers(tmp_path) == ["run"]


def test_run_missing_its_model(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.keras").unlink()
    code = cli.main([str(run), "--recipe", "float32", "--out", str(tmp_path / "b")])
    assert "missing model.keras" in _one_line_error(capsys, code)
    assert _leftovers(tmp_path) == ["run"]


def test_existing_output_that_is_a_file(tiny_run, tmp_path, capsys):
    out = tmp_path / "b"
    out.write_text("not a bundle")
    code = cli.main([str(tiny_run), "--recipe", "float32", "--out", str(out), "--overwrite"])
    assert "not a directory" in _one_line_error(capsys, code)
    assert out.read_text() == "not a bundle"


def test_failed_conversion_leaves_nothing_behind(tiny_run, tmp_path, capsys, monkeypatch):
    """A conversion that fails after the float32 file was made, and a failure while
    the bundle directory is being written: one line, no bundle, no staging directory."""
    import export.convert

    real_convert = export.convert.convert

    def failing_convert(saved_model_dir, recipe, representative_dataset=None, **kwargs):
        if recipe == "dynamic_int8":
            raise ExportError("dynamic_int8 conversion failed: ops outside the LiteRT "
                              "builtins: tf.Foo")
        return real_convert(saved_model_dir, recipe, representative_dataset, **kwargs)

    monkeypatch.setattr(export.convert, "convert", failing_convert)
    out = tmp_path / "b"
    # One signature pair: the failure paths are what is tested here.
    code = cli.main([str(tiny_run), "--recipe", "all", "--out", str(out), "--batch-sizes", "1"])
    assert "tf.Foo" in _one_line_error(capsys, code, after_progress=True)
    assert _leftovers(tmp_path) == []

    monkeypatch.setattr(export.convert, "convert", real_convert)

    def failing_verify(*args, **kwargs):
        raise ExportError("verification broke")

    monkeypatch.setattr("export.verify.verify_bundle", failing_verify)
    code = cli.main([str(tiny_run), "--recipe", "float16", "--out", str(out),
                     "--batch-sizes", "1"])
    assert "verification broke" in _one_line_error(capsys, code, after_progress=True)
    assert _leftovers(tmp_path) == []


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    assert "--recipe" in capsys.readouterr().out


def test_bad_samples(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([str(tiny_run), "--recipe", "float32", "--out", str(tmp_path / "b"),
                  "--samples", "0"])
    assert stop.value.code == 1
    assert _one_line_error(capsys, 1) == "error: --samples must be at least 1, got 0"


@pytest.mark.parametrize("flag, value", [("--batch-sizes", "0"), ("--batch-sizes", "4,x"),
                                         ("--source-lengths", ""), ("--source-lengths", "-8")])
def test_unreadable_pair_sizes_are_one_usage_line(tiny_run, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as raised:
        cli.main([str(tiny_run), "--recipe", "float32", "--out", str(tmp_path / "b"),
                  flag, value])
    assert raised.value.code == 2
    line = _one_line_error(capsys, raised.value.code)
    assert line.startswith("error: argument " + flag), line
    assert not (tmp_path / "b").exists()


def test_a_source_length_past_s_is_refused_before_any_conversion(tiny_run, tmp_path, capsys):
    code = cli.main([str(tiny_run), "--recipe", "float32", "--out", str(tmp_path / "b"),
                     "--source-lengths", "999"])
    line = _one_line_error(capsys, code, after_progress=True)
    assert "--source-lengths: a source length must lie in [1, S=" in line, line
    assert _leftovers(tmp_path) == []


def test_choose_variants_puts_the_one_sentence_pair_first():
    from export.convert import choose_variants
    from kit.models import preset

    config = preset("tiny", max_source_length=40)
    assert choose_variants(config) == [(1, 40), (4, 40), (32, 40)]
    assert choose_variants(config, (32, 1), (16, 24)) == [
        (1, 40), (1, 24), (1, 16), (32, 40), (32, 24), (32, 16)]
    with pytest.raises(ValueError, match="at least 1"):
        choose_variants(config, (0,))
