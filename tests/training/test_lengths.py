"""training/lengths.py: S and T from the data, on hand-made length lists."""

import pytest

from training.lengths import (
    MAX_AUTO_LENGTH,
    LengthError,
    Lengths,
    choose_lengths,
    covering_length,
    outliers,
    robust_length,
)


def test_covering_length_rounds_up_to_a_multiple_of_eight():
    assert covering_length([1, 2, 3]) == 8
    assert covering_length([10] * 999 + [100]) == 16  # one in a thousand may be cut
    assert covering_length([10] * 998 + [100, 100]) == 104  # two may not
    assert covering_length([9000]) == MAX_AUTO_LENGTH
    assert covering_length([]) == 8


def test_target_counts_the_bos_or_eos_position():
    lengths = choose_lengths([5, 6], [7, 8])
    assert (lengths.source, lengths.target) == (8, 16)  # 8 tokens need 9 positions
    assert (lengths.source_cut, lengths.target_cut) == (0, 0)
    assert choose_lengths([5], [7]).target == 8  # 7 tokens + 1 = 8 positions fit


def test_given_lengths_are_kept_and_may_cut():
    lengths = choose_lengths([30] * 10, [3] * 10, source=16)
    assert (lengths.source, lengths.source_cut, lengths.chosen) == (16, 10, "mixed")
    assert "cut (100.00%)" in lengths.describe()


def test_refuses_when_the_cap_would_cut_more_than_one_percent():
    with pytest.raises(LengthError, match="--max-target-length"):
        choose_lengths([5] * 100, [5] * 97 + [900] * 3)
    # Long lines that are the data (3.5%, as in a dates file with pasted paragraphs)
    # are not outliers: the cap would cut them all, which is refused.
    with pytest.raises(LengthError, match="--max-source-length"):
        choose_lengths([14] * 965 + [5000] * 35, [10] * 1000)
    # 1% exactly is accepted, and recorded.
    lengths = choose_lengths([5] * 1000, [5] * 990 + [900] * 10)
    assert lengths.target_cut == 10 and lengths.target == MAX_AUTO_LENGTH


def test_one_line_does_not_set_the_length():
    # One 5,000-character line among 275 dates used to set S to the cap.
    lengths = choose_lengths([14] * 100 + [33] * 174 + [5000], [10] * 275)
    assert (lengths.source, lengths.source_cut, lengths.source_outliers) == (40, 1, 1)
    assert (lengths.target, lengths.target_outliers) == (16, 0)
    assert "1 source(s) far longer than the rest" in lengths.describe()
    # Long but not far from the body: kept whole (a long word, a long number).
    lengths = choose_lengths([10] * 900 + [60] * 5, [5] * 905)
    assert (lengths.source, lengths.source_cut, lengths.source_outliers) == (64, 0, 0)
    # Few pairs: the body is their longest, so nothing is an outlier.
    assert choose_lengths([10, 12, 300], [5, 5, 5]).source == 304


def test_outliers_are_bounded_by_what_may_be_cut():
    assert outliers([10] * 991 + [900] * 9) == 9  # 0.9% + the 0.1% coverage = 1%
    assert outliers([10] * 990 + [900] * 10) == 0  # one more: they are the data
    assert outliers([]) == 0
    assert robust_length([10] * 999 + [900]) == (16, 1)


def test_lengths_of_older_runs_still_load():
    old = {"source": 40, "target": 16, "source_cut": 0, "target_cut": 0, "pairs": 10,
           "chosen": "data"}
    assert Lengths(**old).describe().endswith("(0.00%)")


def test_a_presets_lengths_get_the_one_percent_rule_too():
    """The tiny preset's S of 16 cut a quarter of the built-in dates without a word."""
    sources, targets = [10] * 70 + [20] * 30, [10] * 100
    with pytest.raises(LengthError, match=r"30 of 100 training sources \(30.0%\) are longer "
                                          r"than the preset's source length \(16 tokens\); "
                                          r"pass --max-source-length N"):
        choose_lengths(sources, targets, source=16, target=12, from_preset=["source"])
    # The user's own S is theirs to choose: cutting is then accepted as asked.
    assert choose_lengths(sources, targets, source=16, target=12).source_cut == 30


def test_the_tiny_preset_on_the_built_in_dates_asks_for_lengths(tmp_path):
    from training.options import TrainError, TrainOptions
    from training.train import train

    options = TrainOptions(data="default", out=str(tmp_path / "run"), preset="tiny",
                           epochs=1, limit=400, accept_trivial=True)
    with pytest.raises(TrainError, match="preset's source length .* --max-source-length"):
        train(options)
    run = tmp_path / "run"
    assert not run.exists() or not any(run.iterdir()), list(run.iterdir())
