"""The sweep's CPU-side pieces: task encoding, exact match, the grid and its budget.
Training runs need JAX (checked by hand: benchmarks/sweep_jax.py --grid smoke)."""

import json

import numpy as np
import pytest

from benchmarks import sweep_jax
from kit.tokenizers import BOS_ID, EOS_ID


def test_encode_task_gives_each_side_its_vocabulary_and_shifts_the_target():
    arrays = sweep_jax.encode_task([("ab", "12"), ("ba", "2")], [("aab", "211")])
    source_vocab = json.loads(arrays["source_vocabulary"])
    target_vocab = json.loads(arrays["target_vocabulary"])
    assert set(source_vocab[4:]) == {"a", "b"} and set(target_vocab[4:]) == {"1", "2"}
    assert arrays["train_source"].shape == (2, 3)  # S: the longest source, valid included
    decoder, labels = arrays["valid_decoder"][0], arrays["valid_labels"][0]
    two, one = target_vocab.index("2"), target_vocab.index("1")
    assert decoder.tolist() == [BOS_ID, two, one, one]
    assert labels.tolist() == [two, one, one, EOS_ID]
    assert arrays["train_labels"][1].tolist() == [two, EOS_ID, 0, 0]


def test_prepare_refuses_a_validation_source_seen_in_training(tmp_path):
    for split, rows in (("train", "ab\t1\ncd\t2\n"), ("valid", "cd\t2\n")):
        (tmp_path / "numbers").mkdir(exist_ok=True)
        (tmp_path / "numbers" / f"{split}.tsv").write_text(rows)
    with pytest.raises(SystemExit, match="error: numbers: 1 validation sources"):
        sweep_jax.prepare(tmp_path, ["numbers"])


def test_exact_match_counts_eos_and_a_target_that_fills_every_position():
    labels = np.array([[5, 6, EOS_ID, 0], [5, 6, 7, EOS_ID]])  # T 4: 3 decoded positions
    assert sweep_jax.exact_match(np.array([[5, 6, EOS_ID], [5, 6, 7]]), labels) == 1.0
    assert sweep_jax.exact_match(np.array([[5, 6, 7], [5, 6, 8]]), labels) == 0.0


def test_default_grid_crosses_norm_and_warmup_first_on_every_task():
    runs = sweep_jax.default_grid(sweep_jax.TASKS, 3000, 250)
    assert len(runs) == 36
    first = runs[:18]
    assert {(r["task"], r["norm_first"], r["warmup"]) for r in first} == {
        (t, n, w) for t in sweep_jax.TASKS for n in (False, True)
        for w in (100, 1000, "scaled")}
    assert all(r["tier"] == 1 and r["preset"] == "base" for r in first)
    assert len({sweep_jax.run_name(r) for r in runs}) == 36


def test_a_budget_that_holds_no_run_launches_none(tmp_path):
    runs = sweep_jax.smoke_grid(["numbers"], 50, 25)
    results = sweep_jax.sweep(runs, tmp_path, tmp_path / "out", budget_s=5, jobs=2,
                              first_run_estimate_s=60, reserve_s=1)
    assert [r["status"] for r in results] == ["not started"] * 2
    lines = (tmp_path / "out" / "sweep.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [r["name"] for r in results]
