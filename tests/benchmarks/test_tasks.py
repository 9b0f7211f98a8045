"""The real tasks of benchmarks/tasks: each builder on a small slice of its package's
real data, the baselines, and the runner on the real output of the kit's commands."""

import dataclasses
import gettext
import importlib.resources
import importlib.util
import json

import pytest

from benchmarks.tasks import TASKS
from benchmarks.tasks.__main__ import main
from benchmarks.tasks.common import score_predictions
from benchmarks.tasks.messages import catalog_pairs, read_mo
from benchmarks.tasks.runner import build_task, parse_metrics, run_tasks
from benchmarks.tasks.words import suffix_rule
from kit.metrics import METRICS
from kit.tsv import read_tsv


def installed(task):
    if not task.in_requirements and importlib.util.find_spec(task.module) is None:
        pytest.skip(f"{task.package} is optional and not installed")
    return task


def read(path):
    pairs, bad = read_tsv(str(path), path)
    assert bad == []
    return pairs


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_builds_disjoint_well_formed_files_and_its_baselines(name, tmp_path):
    task = installed(TASKS[name])
    built = build_task(task, tmp_path, "small")
    raw = (tmp_path / "train.tsv").read_bytes().decode("utf-8")
    assert raw.endswith("\n") and "\r" not in raw
    train, test = read(tmp_path / "train.tsv"), read(tmp_path / "test.tsv")
    assert len(train) == built["stats"]["train_pairs"] and len(test) == built["stats"]["test_pairs"]
    train_size, test_size = task.sizes["small"]
    # Sizes count split keys: sources, or lemmas whose several sources stay together.
    assert len({s for s, _ in test}) >= test_size
    assert train_size is None or len({s for s, _ in train}) >= train_size
    assert not {s for s, _ in train} & {s for s, _ in test}
    assert all(s == s.strip() and t == t.strip() for s, t in train + test)
    assert built["baselines"]
    for metrics in built["baselines"].values():
        assert set(metrics) == set(METRICS)
        assert 0.0 <= metrics["exact_match"] <= 100.0


def test_the_same_seed_builds_the_same_files(tmp_path):
    task = TASKS["pinyin"]
    build_task(task, tmp_path / "a", "small")
    build_task(task, tmp_path / "b", "small")
    for name in ("train.tsv", "test.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_numbers_of_the_test_set_never_occur_in_training():
    train, test = TASKS["numbers"].build(3000, 300, seed=1)
    assert not {t for _, t in train} & {t for _, t in test}
    languages_seen = {source.split()[0] for source, _ in train}
    assert {"one", "un", "uno", "um"} & languages_seen  # several languages, not one
    assert all(target.isdigit() and int(target) < 10 ** 6 for _, target in train + test)


def test_g2p_en_keeps_stress_and_alternative_pronunciations_as_extra_lines():
    train, test = TASKS["g2p_en"].build(3000, 300, seed=0)
    pairs = train + test
    assert all(source == source.lower() for source, _ in pairs)
    assert any(phone[-1] in "012" for _, target in pairs for phone in target.split())
    counts = {}
    for source, _ in pairs:
        counts[source] = counts.get(source, 0) + 1
    assert max(counts.values()) >= 2


def test_g2p_en_is_also_scored_without_stress(tmp_path):
    (name, normalize), = TASKS["g2p_en"].also_scored
    assert normalize("K AE1 T ER0 Z") == "K AE T ER Z"
    # A stress error is an error with stress, and right without it.
    test = [("cats", "K AE1 T S"), ("cats", "K AE2 T S"), ("dog", "D AO1 G")]
    predictions = tmp_path / "predictions.tsv"
    predictions.write_text("cats\tK AE0 T S\tK AE1 T S\t0\ndog\tD AO1 G\tD AO1 G\t1\n",
                           encoding="utf-8")
    assert score_predictions(predictions, test)["exact_match"] == 50.0
    assert score_predictions(predictions, test, normalize)["exact_match"] == 100.0


def test_hyphenation_only_inserts_hyphens():
    train, _ = TASKS["hyphenation"].build(500, 50, seed=0)
    assert all(target.replace("-", "") == source for source, target in train)
    assert sum("-" in target for _, target in train) > len(train) / 2


def test_inflection_keeps_every_form_of_a_lemma_on_one_side():
    train, test = TASKS["inflection_en"].build(300, 40, seed=0)
    lemmas = lambda pairs: {source.split()[0] for source, _ in pairs}  # noqa: E731
    assert not lemmas(train) & lemmas(test)
    assert len(lemmas(test)) == 40


def test_suffix_rule_learns_the_most_frequent_edit_per_tag():
    predict = suffix_rule([("walk VBD", "walked"), ("jump VBD", "jumped"), ("go VBD", "went"),
                           ("city NNS", "cities"), ("body NNS", "bodies")])
    assert predict("talk VBD") == "talked"
    assert predict("party NNS") == "parties"
    assert predict("walk XYZ") == "walk"  # a tag never seen: the lemma


def test_read_mo_agrees_with_the_standard_library_on_a_real_catalog():
    catalog = (importlib.resources.files("jupyterlab_language_pack_fr_FR") / "locale" / "fr_FR"
               / "LC_MESSAGES" / "jupyterlab.mo")
    data = catalog.read_bytes()
    with catalog.open("rb") as handle:
        reference = gettext.GNUTranslations(handle)
    entries = [(i, s) for i, s in read_mo(data) if i and "\x00" not in i and "\x04" not in i]
    assert len(entries) > 1000
    for msgid, msgstr in entries:
        assert reference.gettext(msgid) == msgstr
    with pytest.raises(ValueError, match="magic"):
        read_mo(b"\x00" * 32)


def test_messages_are_sentences_of_words_without_plurals_or_format_only_strings():
    pairs = catalog_pairs("jupyterlab_language_pack_fr_FR")
    assert len(pairs) > 2000
    assert all(any(c.isalpha() for c in source) for source, _ in pairs)
    assert sum(len(source.split()) >= 4 for source, _ in pairs) > len(pairs) / 4


def test_parse_metrics_reads_the_evaluate_line():
    out = "some line\nexact_match 92.1, cer 1.3, wer 2.0, bleu 50.0, chrf 61.5, sources 100\n"
    assert parse_metrics(out) == {"exact_match": 92.1, "cer": 1.3, "wer": 2.0, "bleu": 50.0,
                                  "chrf": 61.5, "sources": 100}
    with pytest.raises(ValueError, match="no metrics line"):
        parse_metrics("error: something\n")


def test_command_line_builds_only_and_refuses_an_unknown_task(tmp_path, capsys):
    assert main(["inflection_en", "--size", "small", "--build-only",
                 "--workdir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert [entry["task"] for entry in results["tasks"]] == ["inflection_en"]
    assert "most frequent suffix per tag" in capsys.readouterr().err
    assert main(["nope"]) == 2
    assert "unknown task(s) nope" in capsys.readouterr().err
    blocker = tmp_path / "a file"
    blocker.write_text("")
    assert main(["pinyin", "--size", "small", "--build-only", "--workdir", str(blocker)]) == 1
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
def test_the_runner_reads_the_real_output_of_train_export_and_evaluate(tmp_path):
    # A slice small enough for a test; the benchmark passes no option to train at all.
    task = dataclasses.replace(TASKS["inflection_en"], sizes={"small": (60, 10)},
                               also_scored=(("upper case", str.upper),))
    results = run_tasks([task], tmp_path, "small",
                        # One epoch of 131 pairs learns nothing: the parsing is what
                        # this test checks, not the model.
                        train_arguments=["--preset", "tiny", "--epochs", "1",
                                         "--accept-trivial"])
    entry = results["tasks"][0]
    assert "error" not in entry, entry.get("error")
    for model in ("bundle", "run"):
        metrics = entry["kit"][model]
        assert set(metrics) == set(METRICS) | {"sources"}
        assert metrics["sources"] == entry["stats"]["test_sources"]
    assert (tmp_path / "inflection_en" / "bundle" / "model.tflite").is_file()
    # The bundle's kept outputs, scored again: the same figures, since upper-casing
    # both sides keeps an exact match exact (the words here are lower case).
    again = entry["kit"]["bundle_also"]["upper case"]
    assert again["exact_match"] == pytest.approx(entry["kit"]["bundle"]["exact_match"], abs=0.05)
    table = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| inflection_en |" in table
    assert "inflection_en, upper case: exact" in table
