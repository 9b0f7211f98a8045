"""training/baselines.py: the trivial baselines and the verdict, on hand-made ids."""

import math

import pytest

from training.baselines import judge, likely_cause, measure

EOS = 3


def _digits(numbers):
    """Character ids of digit strings: '0' is id 4, ..., '9' id 13."""
    return [[4 + int(c) for c in str(n)] for n in numbers]


def test_the_majority_token_and_its_accuracy():
    train = [[5, 5, 6], [5]]  # labels: 5 5 6 EOS, 5 EOS -> 5 is the most frequent
    val = [[5, 7], [6]]  # labels: 5 7 EOS, 6 EOS
    base = measure(train, val, 10, EOS, 0.0, ["a", "b"], [["a"], ["c"]])
    assert base.majority_token == 5
    assert base.majority_token_accuracy == pytest.approx(1 / 5)
    assert base.constant_exact_match == pytest.approx(50.0)
    assert base.target_tokens_per_text == pytest.approx(2.0)


def test_the_unigram_loss_is_the_loss_of_the_token_frequencies():
    # Without smoothing: -mean log f over validation labels, f with half a count added.
    train, val, V = [[5]] * 3, [[5]], 8  # training labels: 5 x3, EOS x3
    base = measure(train, val, V, EOS, 0.0, ["x"] * 3, [["x"]])
    total = 6 + 0.5 * V
    expected = -(math.log(3.5 / total) + math.log(3.5 / total)) / 2
    assert base.unigram_loss == pytest.approx(expected)
    # With smoothing eps, each token costs -(1-eps) log q(y) - eps * mean_v log q(v).
    eps = 0.1
    smoothed = measure(train, val, V, EOS, eps, ["x"] * 3, [["x"]])

    def q(count):
        return (1 - eps) * (count + 0.5) / total + eps / V

    mean_log_q = (2 * math.log(q(3)) + (V - 2) * math.log(q(0))) / V
    assert smoothed.unigram_loss == pytest.approx(-(1 - eps) * math.log(q(3)) - eps * mean_log_q)


def test_a_model_that_learned_nothing_is_trivial():
    numbers = list(range(1000, 1300))
    train = _digits(numbers[:250])
    val = _digits(numbers[250:])
    refs = [[str(n)] for n in numbers[250:]]
    base = measure(train, val, 16, EOS, 0.1, [str(n) for n in numbers[:250]], refs)
    # Near the baselines, and one answer for every source: trivial on all three counts.
    verdict = judge(base, base.unigram_loss, base.majority_token_accuracy,
                    ["1052"] * 50, refs, token_name="'1'")
    assert verdict.trivial and len(verdict.reasons) == 3
    assert "always predicting '1'" in verdict.reasons[0]
    assert "1 distinct output(s) for 50 sources" in verdict.reasons[2]
    assert verdict.sample_distinct_outputs == 1
    # Clearly better on every count: not trivial.
    good = judge(base, 0.5 * base.unigram_loss, base.majority_token_accuracy + 0.3,
                 [r[0] for r in refs], refs)
    assert not good.trivial and good.reasons == [] and good.sample_exact_match == 100.0
    # Diverse wrong outputs are not a collapse (a hard task, early on).
    wrong = judge(base, 0.5 * base.unigram_loss, 0.9, [str(n + 1) for n in range(50)], refs)
    assert not wrong.trivial


def test_one_answer_is_not_a_collapse_when_the_references_agree():
    refs = [["yes"]] * 20
    base = measure([[5]] * 10, [[5]] * 20, 8, EOS, 0.0, ["yes"] * 10, refs)
    assert not judge(base, 0.0, 1.0, ["yes"] * 20, refs).trivial


def test_the_likely_cause_names_a_flag():
    numbers = list(range(100_000, 100_300))
    # One opaque piece per number: every target token is rare.
    opaque = measure([[4 + i] for i in range(250)], [[300]] * 50, 400, EOS, 0.1,
                     [str(n) for n in numbers[:250]], [[str(n)] for n in numbers[250:]])
    assert opaque.rare_token_share == 1.0
    assert "--target-tokenizer char" in likely_cause(opaque, "sentencepiece", 250)
    digits = measure(_digits(numbers[:250]), _digits(numbers[250:]), 16, EOS, 0.1,
                     [], [])
    assert "too little data" in likely_cause(digits, "char", 4000)
    assert "--warmup-steps" in likely_cause(digits, "char", 50_000)


def test_an_output_worse_than_copying_the_source_is_trivial():
    refs = [[f"le chat {i}"] for i in range(20)]
    sources = [f"the cat {i}" for i in range(20)]
    base = measure([[5, 6]] * 10, [[5, 6]] * 20, 8, EOS, 0.0, ["x"] * 10, refs)
    looping = [f"ssssssssssssssss {i}" for i in range(20)]
    verdict = judge(base, 0.0, 1.0, looping, refs, sources=sources)
    assert verdict.trivial and "for copying the source" in verdict.reasons[0]
    assert not judge(base, 0.0, 1.0, [r[0] for r in refs], refs, sources=sources).trivial
