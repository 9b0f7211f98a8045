"""training/lengths.py: S and T from the data, on hand-made length lists."""

import pytest

from training.lengths import MAX_AUTO_LENGTH, LengthError, choose_lengths, covering_length


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
    # 1% exactly is accepted, and recorded.
    lengths = choose_lengths([5] * 100, [5] * 99 + [900])
    assert lengths.target_cut == 1 and lengths.target == MAX_AUTO_LENGTH
