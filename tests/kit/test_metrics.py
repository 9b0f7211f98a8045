"""kit/metrics.py on hand-computed cases, alternative references included."""

import pytest

from kit.metrics import corpus_metrics, error_rate, exact_match, task_metrics


def test_exact_match_accepts_any_reference():
    hyps = ["K AE1 T", "T AH0 M EY1 T OW2", "x"]
    refs = [["K AE1 T"], ["T AH0 M AA1 T OW2", "T AH0 M EY1 T OW2"], "y"]
    assert exact_match(hyps, refs) == pytest.approx(200 / 3)


def test_character_and_word_error_rates_by_hand():
    # "kitten" -> "sitting": 3 edits over 7 reference characters.
    assert error_rate(["kitten"], ["sitting"], words=False) == pytest.approx(300 / 7)
    # One word substituted and one deleted, over 4 reference words.
    assert error_rate(["the cat sat"], ["the dog sat down"], words=True) == pytest.approx(50.0)
    # Corpus rates sum edits and lengths, not per-sentence rates.
    assert error_rate(["ab", "abcd"], ["ab", "abce"], words=False) == pytest.approx(100 / 6)


def test_error_rate_takes_the_closest_reference():
    assert error_rate(["a b"], [["x y z", "a b c"]], words=True) == pytest.approx(100 / 3)
    assert error_rate([""], [""], words=False) == 0.0
    assert error_rate(["extra"], [""], words=False) == 100.0


def test_bleu_and_chrf_with_uneven_reference_counts():
    values = corpus_metrics(["the cat is on the mat", "hello"],
                            [["the cat is on the mat"], ["hi", "hello"]])
    assert values["exact_match"] == 100.0 and values["cer"] == 0.0 and values["wer"] == 0.0
    assert values["bleu"] == pytest.approx(100.0) and values["chrf"] == pytest.approx(100.0)


def test_bad_calls():
    with pytest.raises(ValueError, match="2 hypotheses for 1"):
        corpus_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unknown metric"):
        corpus_metrics(["a"], ["a"], names=("rouge",))
    with pytest.raises(ValueError, match="at least one reference"):
        corpus_metrics(["a"], [[]])


def test_a_run_reports_the_metrics_of_its_task():
    outputs, references = ["2026-11-29", "a cat"], ["2026-11-29", "the cat"]
    dates = task_metrics("exact_match", outputs, references)
    assert list(dates) == ["exact_match", "cer", "wer"] and dates["exact_match"] == 50.0
    assert list(task_metrics("bleu", outputs, references)) == [
        "exact_match", "cer", "wer", "bleu", "chrf"]
