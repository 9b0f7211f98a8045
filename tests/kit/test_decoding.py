"""kit/decoding.py against fake steps over a small alphabet, with exact expected outputs."""

import numpy as np
import pytest

from kit.decoding import greedy_search, until_eos

PAD, BOS, EOS = 0, 2, 3
VOCAB = 8  # ids 4..7 are the letters a..d


def scripted_step(scripts):
    """A step whose row r at position p puts all weight on scripts[r][p] (a fake model
    that 'wants' to write a fixed string), and records what it was fed."""
    fed = []

    def step(tokens, position):
        fed.append((position, tokens.tolist()))
        logits = np.full((len(scripts), VOCAB), -5.0, np.float32)
        for row, script in enumerate(scripts):
            logits[row, script[min(position, len(script) - 1)]] = 5.0
        return logits

    return step, fed


def test_feeds_bos_then_its_own_argmax_and_stops_at_eos():
    step, fed = scripted_step([[4, 5, 6, EOS]])
    ids = greedy_search(step, 1, BOS, EOS, max_new_tokens=6)
    assert ids.tolist() == [[4, 5, 6, EOS, 0, 0]]
    assert fed == [(0, [BOS]), (1, [4]), (2, [5]), (3, [6])]  # no step after EOS
    assert until_eos(ids[0], EOS) == [4, 5, 6, EOS]


def test_rows_finish_apart_and_are_padded_after_their_eos():
    step, fed = scripted_step([[4, EOS], [5, 6, 7, EOS]])
    ids = greedy_search(step, 2, BOS, EOS, max_new_tokens=5)
    assert ids.tolist() == [[4, EOS, 0, 0, 0], [5, 6, 7, EOS, 0]]
    # A finished row is fed its EOS once, then padding, while the other one goes on.
    assert fed == [(0, [BOS, BOS]), (1, [4, 5]), (2, [EOS, 6]), (3, [0, 7])]


def test_stops_at_the_limit_without_eos():
    step, _ = scripted_step([[4, 5]])
    ids, logits = greedy_search(step, 1, BOS, EOS, max_new_tokens=3, return_logits=True)
    assert ids.tolist() == [[4, 5, 5]]
    assert until_eos(ids[0], EOS) == [4, 5, 5]
    assert logits.shape == (1, 3, VOCAB) and logits.dtype == np.float32
    assert logits[0, :, 5].tolist() == [-5.0, 5.0, 5.0]


def test_logits_after_the_last_step_are_zero():
    step, _ = scripted_step([[EOS]])
    _, logits = greedy_search(step, 1, BOS, EOS, max_new_tokens=4, return_logits=True)
    assert logits[0, 0, EOS] == 5.0
    assert not logits[0, 1:].any()


def test_ties_go_to_the_lowest_id():
    def step(tokens, position):
        return np.zeros((1, VOCAB), np.float32) + (np.arange(VOCAB) >= 6)  # 6 and 7 tie
    assert greedy_search(step, 1, BOS, EOS, max_new_tokens=2).tolist() == [[6, 6]]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_max_new_tokens_is_checked(bad):
    step, _ = scripted_step([[4]])
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_search(step, 1, BOS, EOS, max_new_tokens=bad)
