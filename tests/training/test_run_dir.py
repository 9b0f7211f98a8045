"""The run directory's owner: what a train command finds in --out, and the older forms
of state.json it still reads. No training here: the files are written by hand."""

import json

import pytest

from training import run_dir as rd
from training.options import TrainOptions

IDENTITY = TrainOptions().identity()


def write_state(run, **fields):
    state = rd.new_state(IDENTITY, {}, tokenizer=None, preset=None, schedule={},
                         lengths=None, data_fingerprint=None)
    state.update(fields)
    (run / rd.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    (run / rd.STATE_JSON).write_text(json.dumps(state))
    return state


def test_no_directory_or_an_empty_one_is_a_fresh_start(tmp_path):
    assert rd.clear_failed_start_or_resume(tmp_path / "absent", IDENTITY) is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / rd.LOCK_FILE).write_text("123\n")  # a killed training's
    assert rd.clear_failed_start_or_resume(tmp_path / "empty", IDENTITY) is None


def test_a_failed_start_is_removed_by_the_owner_only(tmp_path):
    run = tmp_path / "run"
    write_state(run)
    (run / "source_tokenizer.json").write_text("{}")
    (run / rd.SAMPLES_DIR).mkdir()
    said = []
    # A worker that is not the chief reads it as fresh and leaves it as it is.
    assert rd.clear_failed_start_or_resume(run, IDENTITY, owner=False, log=said.append) is None
    assert (run / rd.STATE_JSON).is_file() and not said
    # Another identity does not matter: the start completed no epoch.
    other = {**IDENTITY, "seed": 7}
    assert rd.clear_failed_start_or_resume(run, other, log=said.append) is None
    assert said == [f"{run} holds a start that completed no epoch; starting afresh"]
    assert list(run.iterdir()) == []


def test_a_start_beside_files_of_the_user_is_not_a_failed_one(tmp_path):
    run = tmp_path / "run"
    write_state(run)
    (run / "notes.txt").write_text("mine")
    assert rd.clear_failed_start_or_resume(run, IDENTITY)["epochs_done"] == 0
    assert (run / "notes.txt").read_text() == "mine"


def test_a_run_is_resumed_with_its_identity_and_refused_with_another(tmp_path):
    run = tmp_path / "run"
    write_state(run, epochs_done=2, best_epoch=2, best_val_loss=0.5)
    (run / rd.CHECKPOINT_DIR / ".state.json.x1y2.tmp").write_text('{"epo')  # a killed save
    assert rd.clear_failed_start_or_resume(run, IDENTITY)["epochs_done"] == 2
    assert not list((run / rd.CHECKPOINT_DIR).glob(".*"))
    with pytest.raises(rd.RunDirError, match=r"holds a different run \(differs in: batch_size, "
                                             r"seed\); choose another --out"):
        rd.clear_failed_start_or_resume(run, {**IDENTITY, "seed": 7, "batch_size": 8})


@pytest.mark.parametrize("content, why", [("{not json", "damaged"),
                                          ("[1, 2]", "not a JSON object")])
def test_a_damaged_state_is_one_error(tmp_path, content, why):
    (tmp_path / rd.CHECKPOINT_DIR).mkdir()
    (tmp_path / rd.STATE_JSON).write_text(content)
    with pytest.raises(rd.RunDirError, match=why):
        rd.clear_failed_start_or_resume(tmp_path, IDENTITY)


def test_older_identities_read_as_todays():
    old = {key: value for key, value in IDENTITY.items()
           if key not in ("source_tokenizer", "target_tokenizer", "vocab_size")}
    shared = rd.recorded_identity({"identity": {**old, "tokenizer": "char"}})
    assert shared == {**IDENTITY, "source_tokenizer": "char", "target_tokenizer": "char"}
    assert rd.recorded_identity({"identity": old}) == IDENTITY
    # The warm-up was fixed at 1000 before a run chose it (and recorded its "schedule").
    fixed = {**IDENTITY, "warmup_steps": 1000}
    assert rd.recorded_identity({"identity": fixed}) == IDENTITY
    assert rd.recorded_identity({"identity": fixed, "schedule": {}}) == fixed


def test_older_records_of_the_tokenizer_and_of_model_keras():
    assert rd.target_tokenizer_kind({"tokenizer": {"type": "word"}}) == "word"
    assert rd.target_tokenizer_kind({"tokenizer": {"source": {"type": "char"},
                                                   "target": {"type": "word"}}}) == "word"
    assert rd.target_tokenizer_kind({}) == "char"
    state = {"best_epoch": 3, "best_val_loss": 0.25}
    assert rd.held_by_model_keras(state) == {"epochs": [3], "val_loss": 0.25}
    averaged = {"epochs": [2, 3], "val_loss": 0.2, "val_token_accuracy": 0.9}
    assert rd.held_by_model_keras({**state, "model_keras": averaged}) == averaged


def test_a_run_is_finished_when_run_json_says_so_after_as_many_epochs(tmp_path):
    state = write_state(tmp_path, epochs_done=2)
    assert rd.finished_run(tmp_path, state) is None  # no run.json yet
    info = rd.run_record(state, complete=False, metrics={})
    (tmp_path / rd.RUN_JSON).write_text(json.dumps(info))
    assert rd.finished_run(tmp_path, state) is None
    rd.save_finished(tmp_path, state, rd.run_record(state, complete=True, metrics={"x": 1}))
    assert rd.finished_run(tmp_path, state)["metrics"] == {"x": 1}
    assert json.loads((tmp_path / rd.STATE_JSON).read_text())["complete"] is True
    assert rd.finished_run(tmp_path, {**state, "epochs_done": 3}) is None  # extended since
    record = rd.run_record(state, complete=True, metrics={}, data="default")
    assert record["format_version"] == rd.RUN_FORMAT_VERSION
    assert record["data"] == "default" and record["history"] == state["history"]
