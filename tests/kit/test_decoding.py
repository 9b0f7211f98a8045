"""kit/decoding.py against fake steps over a small alphabet, with exact expected outputs."""

import numpy as np
import pytest

from kit.decoding import TopK, TopP, beam_search, greedy_search, sample_search, until_eos

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


# -- sampling --------------------------------------------------------------------------

def fixed_step(probabilities):
    """Every row, every position: the same distribution over the alphabet."""
    logits = np.log(np.asarray(probabilities, np.float64)).astype(np.float32)

    def step(tokens, position):
        return np.tile(logits, (len(tokens), 1))

    return step


def test_top_k_one_is_greedy_and_top_p_small_is_greedy():
    step, _ = scripted_step([[4, 5, 6, EOS], [7, EOS]])
    greedy = greedy_search(step, 2, BOS, EOS, 5)
    for sampler in (TopK(1, seed=0), TopP(1e-6, seed=0), TopK(3, temperature=1e-3, seed=0)):
        step, _ = scripted_step([[4, 5, 6, EOS], [7, EOS]])
        np.testing.assert_array_equal(sample_search(step, 2, BOS, EOS, 5, sampler), greedy)


def test_samplers_draw_only_from_their_allowed_set_in_proportion():
    # a..d with probabilities .5 .3 .15 .05 (EOS and specials have none).
    probs = [1e-12, 1e-12, 1e-12, 1e-12, 0.5, 0.3, 0.15, 0.05]
    draws = {}
    for name, sampler in (("k2", TopK(2, seed=1)), ("p75", TopP(0.75, seed=1)),
                          ("p1", TopP(1.0, seed=1))):
        ids = sample_search(fixed_step(probs), 4000, BOS, EOS, 1, sampler)[:, 0]
        draws[name] = np.bincount(ids, minlength=VOCAB) / len(ids)
    # k=2 and p=0.75 (0.5 + 0.3 reaches it) keep a and b, renormalised to .625/.375.
    for name in ("k2", "p75"):
        assert set(np.flatnonzero(draws[name])) == {4, 5}
        np.testing.assert_allclose(draws[name][[4, 5]], [0.625, 0.375], atol=0.03)
    np.testing.assert_allclose(draws["p1"][4:], [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_temperature_flattens_and_seed_repeats():
    probs = [1e-12, 1e-12, 1e-12, 1e-12, 0.7, 0.1, 0.1, 0.1]
    hot = sample_search(fixed_step(probs), 3000, BOS, EOS, 1, TopK(4, temperature=50.0, seed=2))
    share = np.bincount(hot[:, 0], minlength=VOCAB)[4] / 3000
    assert 0.2 < share < 0.35  # near uniform over 4 (0.25), far from 0.7
    first = sample_search(fixed_step(probs), 50, BOS, EOS, 3, TopP(0.9, seed=7))
    again = sample_search(fixed_step(probs), 50, BOS, EOS, 3, TopP(0.9, seed=7))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("make", [
    lambda: TopK(0), lambda: TopK(2.5), lambda: TopP(0.0), lambda: TopP(1.5),
    lambda: TopK(3, temperature=0), lambda: TopP(0.5, temperature=float("inf")),
])
def test_sampler_arguments_are_checked(make):
    with pytest.raises(ValueError, match="Received"):
        make()


# -- beam search -----------------------------------------------------------------------

class TreeModel:
    """A fake model given as next-token probabilities after each prefix (a string of
    letters a..d, ids 4..7; '$' is EOS). It keeps each row's prefix as a real model
    keeps each beam's KV cache: `reorder` must be called for beams to stay right."""

    LETTERS = "abcd"

    def __init__(self, table):
        self.table = table  # prefix -> {next letter or '$': probability}
        self.rows = [""]
        self.calls = []

    @staticmethod
    def char(token):
        return "$" if token == EOS else TreeModel.LETTERS[token - 4]

    def step(self, tokens, position):
        self.calls.append((position, len(tokens)))
        if position:
            self.rows = [row + self.char(t) for row, t in zip(self.rows, tokens)]
        logits = np.full((len(tokens), VOCAB), -30.0, np.float32)
        for r, row in enumerate(self.rows):
            for nxt, p in self.table.get(row, {"$": 1.0}).items():
                logits[r, EOS if nxt == "$" else 4 + self.LETTERS.index(nxt)] = np.log(p)
        return logits

    def reorder(self, parents):
        self.rows = [self.rows[p] for p in parents]


def text(ids):
    return "".join(TreeModel.char(t) for t in ids)


# Greedy reads "a" (0.6) then "a" (0.4) then EOS: p = 0.24. "b" then EOS has 0.36.
TREE = {"": {"a": 0.6, "b": 0.4}, "a": {"a": 0.4, "b": 0.3, "$": 0.3},
        "b": {"$": 0.9, "a": 0.1}, "aa": {"$": 1.0}, "ab": {"$": 1.0}, "ba": {"$": 1.0}}


def test_beam_search_finds_what_greedy_misses():
    model = TreeModel(TREE)
    greedy = greedy_search(model.step, 1, BOS, EOS, 5)
    assert text(until_eos(greedy[0], EOS)) == "aa$"
    model = TreeModel(TREE)
    beams = beam_search(model.step, model.reorder, BOS, EOS, 5, beam_size=2, length_penalty=0)
    assert [text(h.ids) for h in beams] == ["b$", "aa$"]
    np.testing.assert_allclose([h.log_prob for h in beams], np.log([0.36, 0.24]))
    assert all(h.finished for h in beams)


def test_beam_search_keeps_each_beams_own_history():
    # The continuation depends on the whole prefix: a beam that took another's history
    # (no reorder) would read the wrong row of the table.
    tree = {"": {"a": 0.5, "b": 0.5}, "a": {"c": 0.9, "d": 0.1}, "b": {"d": 0.9, "c": 0.1},
            "ac": {"$": 1.0}, "bd": {"$": 1.0}, "ad": {"$": 1.0}, "bc": {"$": 1.0}}
    model = TreeModel(tree)
    beams = beam_search(model.step, model.reorder, BOS, EOS, 4, beam_size=2, length_penalty=0)
    assert sorted(text(h.ids) for h in beams) == ["ac$", "bd$"]
    np.testing.assert_allclose([h.log_prob for h in beams], np.log([0.45, 0.45]))


def test_length_penalty_favours_longer_outputs():
    for penalty, best in ((0.0, "b$"), (1.0, "aa$")):
        model = TreeModel(TREE)
        beams = beam_search(model.step, model.reorder, BOS, EOS, 5, beam_size=2,
                            length_penalty=penalty)
        assert text(beams[0].ids) == best
        assert beams[0].score == pytest.approx(beams[0].log_prob / len(beams[0].ids) ** penalty)


def test_beam_of_one_is_greedy_and_unfinished_outputs_are_returned():
    model = TreeModel(TREE)
    [only] = beam_search(model.step, model.reorder, BOS, EOS, 5, beam_size=1)
    assert text(only.ids) == "aa$"
    model = TreeModel({"": {"a": 1.0}, "a": {"a": 1.0}, "aa": {"a": 1.0}})
    [cut] = beam_search(model.step, model.reorder, BOS, EOS, 3, beam_size=1)
    assert text(cut.ids) == "aaa" and not cut.finished
    assert model.calls == [(0, 1), (1, 1), (2, 1)]  # never past max_new_tokens


def test_beam_search_stops_once_k_outputs_finished():
    model = TreeModel({"": {"a": 0.5, "b": 0.5}})  # every other prefix: EOS for sure
    beams = beam_search(model.step, model.reorder, BOS, EOS, 10, beam_size=2)
    assert sorted(text(h.ids) for h in beams) == ["a$", "b$"]
    assert model.calls == [(0, 1), (1, 2)]


@pytest.mark.parametrize("kwargs", [dict(beam_size=0), dict(beam_size=1.5),
                                    dict(length_penalty=float("nan")), dict(max_new_tokens=0)])
def test_beam_arguments_are_checked(kwargs):
    model = TreeModel(TREE)
    args = dict(max_new_tokens=4, beam_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match="Received"):
        beam_search(model.step, model.reorder, BOS, EOS, **args)


def nan_step(at):
    """A step whose logits turn NaN from position `at` on (a broken model)."""
    def step(tokens, position):
        logits = np.zeros((len(tokens), VOCAB), np.float32)
        logits[:, 4] = 1.0
        if position >= at:
            logits[:, 5] = np.nan
        return logits
    return step


@pytest.mark.parametrize("search", [
    lambda step: greedy_search(step, 2, BOS, EOS, max_new_tokens=6),
    lambda step: sample_search(step, 2, BOS, EOS, 6, TopK(2, seed=0)),
    lambda step: beam_search(step, lambda parents: None, BOS, EOS, 6, beam_size=2)])
def test_non_finite_logits_stop_every_search(search):
    """NaN logits used to decode to an arbitrary token (argmax of NaN) and exit 0."""
    from kit.decoding import NonFiniteLogits

    with pytest.raises(NonFiniteLogits, match="step 3 are not finite"):
        search(nan_step(2))
    search(nan_step(99))  # finite throughout: decodes as before


def test_finished_rows_are_not_checked():
    """A row that already ended is padding: whatever its logits, it is not a failure."""
    def step(tokens, position):
        logits = np.zeros((2, VOCAB), np.float32)
        logits[0, EOS] = 1.0  # row 0 ends at once ...
        logits[1, 4] = 1.0
        if position:
            logits[0] = np.nan  # ... and its later logits are never read
        return logits
    assert greedy_search(step, 2, BOS, EOS, 3).tolist() == [[EOS, 0, 0], [4, 4, 4]]
