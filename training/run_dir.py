"""The run directory: what training leaves behind and export reads.

This module owns it: the file names, and the two JSON files, run.json and
checkpoints/state.json, are declared, versioned, validated, written and read here and
nowhere else. Training writes through it and export reads through it.

    RUN_DIR/
      model.keras        the best model by validation loss (in the training precision)
      source_tokenizer.json   the sources' tokenizer (kit.tokenizers), shared by
                              training and the device
      target_tokenizer.json   the targets' tokenizer
      source_tokenizer.model  a SentencePiece tokenizer's model, beside its JSON (the
      target_tokenizer.model  same for the target side)
      run.json           config, data spec, what was chosen from the data (tokenizer,
                         preset, lengths), precision, device, epochs, metrics
      samples/train.tsv  training pairs: calibration data for int8 export
      samples/test.tsv   held-out test pairs: what export verifies a bundle on
      checkpoints/       the last completed epoch, for resuming (not needed by export):
                         state.json, last.keras (with the optimizer's state), and the
                         epochs' weights that checkpoint averaging needs (named by
                         training/averaging.py)
      logs/              TensorBoard
      train.lock         held (fcntl.flock) by the training that writes the directory,
                         with its PID; removed when it ends, left by a killed one

`run.json` is written last and atomically, with `"complete": true` only once training
has finished: a directory without it is a run in progress or an interrupted one. Its
`format_version` is RUN_FORMAT_VERSION; what it holds is `run_record`'s.

`checkpoints/state.json` is what the next train command resumes from (`new_state`);
it has no version field, and its older forms are told by what they lack (a run made
before a choice was recorded lacks that choice's field), which the readers here fill
in: `recorded_identity`, `target_tokenizer_kind`, `held_by_model_keras`.

What a train command finds in --out (`clear_failed_start_or_resume`):

    fresh         no directory, or an empty one (but for the lock)
    failed start  state.json with no epoch done, and only what a fresh start writes
                  before its first epoch ends (FRESH_START_FILES): removed, then fresh
    resumed       state.json of a run with the same identity
    finished      that, and a run.json that says it is complete (`finished_run`)

A run made before each side had its own tokenizer holds one `tokenizer.json` (and
`tokenizer.model`) for both sides: `load_tokenizers` reads it as the tokenizer of each.
"""

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kit.files import (
    atomic_write,
    json_text,
    remove_partial_writes,
    replacing,
    write_json,
    write_synced,
)
from kit.tokenizers import (
    SOURCE_TOKENIZER_FILE,
    TARGET_TOKENIZER_FILE,
    TokenizerError,
    TokenizerPair,
    load_tokenizer,
)
from kit.tsv import TsvError, check_regular_file

RUN_FORMAT_VERSION = 1
RUN_JSON = "run.json"
KERAS_MODEL_FILE = "model.keras"
SAMPLES_DIR = "samples"
TRAIN_SAMPLE = "samples/train.tsv"
TEST_SAMPLE = "samples/test.tsv"
TRAIN_SAMPLE_SIZE = 500  # calibration sentences kept for int8 export
TEST_SAMPLE_SIZE = 1000  # held-out sentences kept for export's verification
CHECKPOINT_DIR = "checkpoints"
STATE_JSON = "checkpoints/state.json"
LAST_CHECKPOINT = "checkpoints/last.keras"
LOG_DIR = "logs"
LOCK_FILE = "train.lock"
LEGACY_TOKENIZER_FILE = "tokenizer.json"  # one for both sides, in runs made before
# Every tokenizer file a run may hold: the JSON files and the SentencePiece models
# named after them (kit/tokenizers/sentencepiece.py).
TOKENIZER_FILES = tuple(f"{stem}.{suffix}" for stem in ("source_tokenizer",
                                                        "target_tokenizer", "tokenizer")
                        for suffix in ("json", "model"))


class RunDirError(ValueError):
    """A run directory that is missing, unfinished, damaged or another run's, or data
    that is not what the run was trained on (one line for the user)."""


class RunDirLocked(RunDirError):
    """Another training holds the run directory (`locked`)."""


# What a fresh start writes before its first epoch completes; a start that failed
# (bad data found late, a NaN in epoch 1, Ctrl-C) leaves only these, and the next
# command may remove them rather than refuse the directory.
FRESH_START_FILES = (*TOKENIZER_FILES, SAMPLES_DIR, CHECKPOINT_DIR, LOG_DIR)
# What a worker other than the chief copies from the chief's --out to resume with.
RESUME_FILES = (*TOKENIZER_FILES, STATE_JSON, LAST_CHECKPOINT)
# Identity fields added after runs were made: an older run's state.json lacks them, and
# it was made with what these values mean.
_IDENTITY_ADDED = {"vocab_size": None}
# The warm-up of runs made before it followed the data, recorded in their identity.
_FIXED_WARMUP_STEPS = 1000


@dataclass
class RunInfo:
    """The parsed `run.json`."""

    path: Path
    config: dict  # TransformerConfig.to_dict()
    data: str  # the --data spec
    metric: str  # "exact_match" (built-in data) or "bleu"
    precision: str  # the policy training ran under
    complete: bool
    epochs_done: int
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # one entry per epoch: its losses, time
    raw: dict = field(default_factory=dict)


@contextlib.contextmanager
def interrupts_deferred():
    """Holds Ctrl-C (SIGINT) until the block ends, then delivers it.

    For `keras.saving.load_model` of a run's .keras files: Keras's
    `Model.build_from_config` builds the model under a bare `except: pass`, so a Ctrl-C
    there is swallowed and leaves a model without its weights or its optimizer state,
    which training or export would then go on using.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, received[0])  # the default one raises KeyboardInterrupt


@contextlib.contextmanager
def locked(run_dir):
    """Holds the run directory for one training command: an exclusive `fcntl.flock` on
    `run_dir/train.lock`, taken before anything else is written there and held until
    the block ends. The OS releases it when the process dies, however it dies; a file
    left by a killed process is taken over by the next command.

    RunDirLocked (one line, with the holder's PID) if another process holds it. Creates
    `run_dir` if needed, and removes what it created if nothing but the lock was put
    there.
    """
    import fcntl  # POSIX only; export and evaluate read run directories without it

    path = Path(run_dir)
    made = [folder for folder in (path, *path.parents) if not folder.exists()]  # deepest first
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_FILE
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunDirLocked(f"another training holds {path}{_holder(lock)}: wait for it "
                              "to end, or choose another --out") from None
        # The holder before us may have removed the file between our open and our lock:
        # a lock on a file no longer at `lock` keeps no one out, so take the new one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Removed before it is unlocked (see the check above), and only if it is still
        # ours; the directories this command made, if it wrote nothing else in them.
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                os.unlink(lock)
        os.close(fd)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break


def _holder(lock):
    """' (PID n)' from the lock file of a running training, or '' if it has none yet."""
    try:
        pid = lock.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (PID {pid})" if pid.isdigit() else ""


def load_keras(path, compile=False):
    """A run's .keras file, loaded with Ctrl-C held back (`interrupts_deferred`); a file
    Keras cannot read is a RunDirError with one line."""
    import keras

    import kit.models.seq2seq_transformer  # noqa: F401  (registers the kit's classes)

    from . import losses  # noqa: F401  (the loss and schedule of a compiled checkpoint)

    try:
        with interrupts_deferred():
            return keras.saving.load_model(path, compile=compile)
    except Exception as error:  # a damaged zip, a foreign file: all one line for the user
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RunDirError(f"cannot load {path}: {first}") from None


def tokenizer_json_files(run_dir):
    """(source JSON, target JSON) of the run's tokenizers: its own files, or the one
    `tokenizer.json` of a run made before each side had its own; RunDirError if none."""
    path = Path(run_dir)
    source, target = path / SOURCE_TOKENIZER_FILE, path / TARGET_TOKENIZER_FILE
    if source.is_file() or target.is_file():
        return source, target
    if (path / LEGACY_TOKENIZER_FILE).is_file():
        return path / LEGACY_TOKENIZER_FILE, path / LEGACY_TOKENIZER_FILE
    raise RunDirError(f"{path} is missing {SOURCE_TOKENIZER_FILE} and {TARGET_TOKENIZER_FILE}")


def load_tokenizers(run_dir):
    """The run's `TokenizerPair`; RunDirError with one line if a file is missing or
    damaged."""
    source, target = tokenizer_json_files(run_dir)
    try:
        source_tokenizer = load_tokenizer(source)
        target_tokenizer = source_tokenizer if target == source else load_tokenizer(target)
    except TokenizerError as error:
        raise RunDirError(str(error)) from None
    return TokenizerPair(source_tokenizer, target_tokenizer)


def save_tokenizers(run_dir, tokenizers):
    """Writes the `TokenizerPair` as the run's two tokenizer files (and their models)."""
    tokenizers.source.save(Path(run_dir) / SOURCE_TOKENIZER_FILE)
    tokenizers.target.save(Path(run_dir) / TARGET_TOKENIZER_FILE)


def write_pairs(path, pairs):
    """One `source<TAB>target` line per pair (tabs and newlines inside text are spaces)."""
    def clean(text):
        return text.replace("\t", " ").replace("\n", " ")
    atomic_write(path, "".join(f"{clean(s)}\t{clean(t)}\n" for s, t in pairs))


def read_pairs(path):
    """The pairs of a samples file; RunDirError naming the line if one is malformed.

    `write_pairs` writes exactly one tab a line: a line with more (the four columns of
    `evaluate --output` written over the file) is not a pair, and verifying on its
    columns as targets would score a good model 0.
    """
    pairs = []
    try:
        check_regular_file(Path(path).name, path)  # a FIFO here would block the open
    except TsvError as error:
        raise RunDirError(str(error)) from None
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\n")
                if not line:
                    continue
                fields = line.split("\t")
                if len(fields) != 2:
                    raise RunDirError(f"{path}, line {number}: expected source<TAB>target, "
                                      f"found {len(fields)} tab-separated fields")
                pairs.append((fields[0], fields[1]))
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"cannot read {path}: {error}") from None
    return pairs


def read_run(run_dir):
    """Check that `run_dir` holds a finished run and return its `RunInfo`.

    Raises RunDirError naming what is missing or wrong.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"run directory not found: {path}")
    info_path = path / RUN_JSON
    if not info_path.is_file():
        raise RunDirError(f"{path} has no {RUN_JSON}: not a run directory, or training has "
                          "not finished (run the same train command again to resume)")
    try:
        raw = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"{info_path} is damaged: {error}") from None
    if not isinstance(raw, dict) or raw.get("format_version") != RUN_FORMAT_VERSION:
        raise RunDirError(f"{info_path} is not a run file of format {RUN_FORMAT_VERSION}")
    if not raw.get("complete"):
        raise RunDirError(f"{path} holds an unfinished run ({raw.get('epochs_done', 0)} of "
                          f"{raw.get('epochs', '?')} epochs): run the train command again "
                          "to finish it")
    for name in (KERAS_MODEL_FILE, TRAIN_SAMPLE, TEST_SAMPLE):
        if not (path / name).is_file():
            raise RunDirError(f"{path} is missing {name}")
    tokenizer_json_files(path)
    try:
        return RunInfo(path=path, config=raw["config"], data=raw["data"], metric=raw["metric"],
                       precision=raw["precision"], complete=True,
                       epochs_done=raw["epochs_done"], metrics=raw.get("metrics", {}),
                       history=raw.get("history", []), raw=raw)
    except KeyError as error:
        raise RunDirError(f"{info_path} lacks the field {error}") from None


def clear_failed_start_or_resume(run_dir, identity, *, owner=True, log=print):
    """What a train command with `identity` (`TrainOptions.identity()`) finds in
    `run_dir`: None to start afresh, or the state.json to resume from; RunDirError for
    a directory that holds something else (a file, a foreign directory, a damaged
    state, another run). The owner removes what a save killed mid-write left, and a
    failed start, which then reads as fresh; a worker that is not the chief reads the
    chief's directory with owner=False and changes nothing."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} exists and is not a directory")
    if not path.exists() or not _entries(path):
        return None
    state_path = path / STATE_JSON
    if not state_path.is_file():
        raise RunDirError(f"--out {path} is not empty and holds no run of ours; "
                          "choose another directory")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunDirError(f"{state_path} is damaged ({error}); choose another --out") from None
    if not isinstance(state, dict):
        raise RunDirError(f"{state_path} is damaged (not a JSON object); choose another --out")
    if owner:  # a save killed mid-write left these
        remove_partial_writes(path, (RUN_JSON, KERAS_MODEL_FILE, *TOKENIZER_FILES))
        remove_partial_writes(path / CHECKPOINT_DIR, (Path(STATE_JSON).name,
                                                      Path(LAST_CHECKPOINT).name))
    if _is_failed_start(path, state):
        if not owner:
            return None
        # Also with the same arguments: such a start may have died before writing its
        # tokenizer or samples, and redoing it costs no completed epoch.
        log(f"{path} holds a start that completed no epoch; starting afresh")
        for name in FRESH_START_FILES:
            target = path / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        return None
    theirs = recorded_identity(state)
    if theirs != identity:
        differing = sorted(k for k in set(theirs) | set(identity)
                           if theirs.get(k) != identity.get(k))
        raise RunDirError(f"--out {path} holds a different run (differs in: "
                          f"{', '.join(differing)}); choose another --out or repeat its "
                          "arguments")
    return state


def _is_failed_start(path, state):
    return (state.get("epochs_done") == 0 and not state.get("complete")
            and all(entry.name in FRESH_START_FILES for entry in _entries(path)))


def _entries(path):
    """What `path` holds but the lock: the chief's, held while it trains (on a host
    whose --out a worker reads too), or left by a killed training."""
    return [entry for entry in path.iterdir() if entry.name != LOCK_FILE]


def recorded_identity(state):
    """The identity a state.json records, in today's fields. A run made before each side
    had its own tokenizer recorded one "tokenizer" for both (default "auto"); one made
    before the warm-up followed the data recorded the fixed warm-up it then had, which
    today's default (None) means."""
    identity = {**_IDENTITY_ADDED, **state.get("identity", {})}
    if "source_tokenizer" not in identity:
        shared = identity.pop("tokenizer", "auto")
        identity.update(source_tokenizer=shared, target_tokenizer=shared)
    if "schedule" not in state and identity.get("warmup_steps") == _FIXED_WARMUP_STEPS:
        identity["warmup_steps"] = None
    return identity


def target_tokenizer_kind(state):
    """The target tokenizer's kind from the state's record (runs made before a
    tokenizer per side recorded one shared "type")."""
    record = state.get("tokenizer") or {}
    return (record.get("target") or record).get("type", "char")


def held_by_model_keras(state):
    """What model.keras holds: {"epochs": [...], "val_loss": ...}, with
    "val_token_accuracy" once averaged. Runs made before checkpoint averaging recorded
    nothing: theirs is the best epoch."""
    return state.get("model_keras") or {"epochs": [state["best_epoch"]],
                                        "val_loss": state["best_val_loss"]}


def finished_run(run_dir, state):
    """The run.json of `run_dir` when it says the run of `state` finished (complete,
    after as many epochs), else None."""
    try:
        info = json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(info, dict) and info.get("complete") and \
            info.get("epochs_done") == state["epochs_done"]:
        return info
    return None


def check_same_data(run_dir, state, spec, fingerprint, log=print):
    """RunDirError when the data of `spec` is not what the run's `state` recorded (a
    TSV file replaced or edited, a TFDS set rebuilt at another version): its splits,
    its characters and its validation losses would no longer be those of the run. A
    run made before fingerprints were recorded gets today's, so later changes are
    noticed."""
    if "data_fingerprint" not in state:
        if fingerprint is not None:
            log(f"note: {run_dir} was made before runs recorded their data's size and "
                f"hash; recording those of {spec} now")
        state["data_fingerprint"] = fingerprint
        return
    recorded = state["data_fingerprint"]
    if recorded == fingerprint:
        return
    recorded, fingerprint = recorded or {}, fingerprint or {}
    if recorded.get("kind") == fingerprint.get("kind") == "tsv":
        if recorded["size"] != fingerprint["size"]:
            what = f"size {recorded['size']} -> {fingerprint['size']} bytes"
        else:
            what = f"same size ({fingerprint['size']} bytes), different SHA-256"
    else:
        what = ", ".join(f"{key} {recorded.get(key)!r} -> {fingerprint.get(key)!r}"
                         for key in sorted(set(recorded) | set(fingerprint))
                         if recorded.get(key) != fingerprint.get(key))
    raise RunDirError(f"{spec} changed since {run_dir} was trained on it ({what}); train "
                      "into a new --out, or put the original data back to resume this run")


def new_state(identity, config, *, tokenizer, preset, schedule, lengths, data_fingerprint):
    """The state.json of a fresh start: what the run is (`identity`, the config dict),
    what was chosen from the data and why (each a record for run.json), no epoch yet.
    Each epoch adds its history entry and moves epochs_done, best_val_loss, best_epoch,
    wall_time_s and model_keras; "complete" is true once the run has finished."""
    return {"identity": identity, "config": config, "epochs_done": 0,
            "best_val_loss": None, "best_epoch": None, "wall_time_s": 0.0, "history": [],
            "tokenizer": tokenizer, "preset": preset, "schedule": schedule,
            "lengths": lengths, "data_fingerprint": data_fingerprint}


def save_start(run_dir, state, tokenizers, train_pairs, test_pairs, seed):
    """A fresh start's files: state.json, the tokenizers, and the samples export reads
    (TRAIN_SAMPLE_SIZE training pairs drawn with `seed`, the first TEST_SAMPLE_SIZE
    held-out pairs)."""
    path = Path(run_dir)
    # state.json first: whatever a failure (a full disk, Ctrl-C, SIGKILL) leaves after
    # it is a start the next command recognizes and clears (`_is_failed_start`), where
    # files without it would make the directory look like someone else's.
    write_json(path / STATE_JSON, state)
    save_tokenizers(path, tokenizers)
    rng = random.Random(seed)
    write_pairs(path / TRAIN_SAMPLE,
                rng.sample(train_pairs, min(TRAIN_SAMPLE_SIZE, len(train_pairs))))
    write_pairs(path / TEST_SAMPLE, test_pairs[:TEST_SAMPLE_SIZE])


def save_epoch(run_dir, state, info, model, *, best, weights_name=None):
    """An epoch's files, all or none: last.keras, model.keras when the epoch is the
    `best` so far, the epoch's weights as checkpoints/`weights_name` (for averaging),
    run.json (`info`) and state.json. Every file is written beside its old self first,
    and only once all are written (a full disk fails one of these writes) are they
    renamed over the old ones; an OSError leaves the previous epoch's files and state
    as they were, which the same command resumes from."""
    path = Path(run_dir)
    # Renamed in the reverse order of entry: the models, run.json, then state.json,
    # which is what the next command resumes from.
    with contextlib.ExitStack() as stack:
        def staged(target, suffix=".tmp"):
            return stack.enter_context(replacing(target, suffix=suffix))

        state_tmp = staged(path / STATE_JSON)
        run_tmp = staged(path / RUN_JSON)
        model.save(staged(path / LAST_CHECKPOINT, ".keras"))
        if best:
            model.save(staged(path / KERAS_MODEL_FILE, ".keras"))
        if weights_name:
            model.save_weights(staged(path / CHECKPOINT_DIR / weights_name, ".weights.h5"))
        write_synced(run_tmp, json_text(info))
        write_synced(state_tmp, json_text(state))


def save_model(run_dir, model):
    """`model` as the run's model.keras, atomically."""
    with replacing(Path(run_dir) / KERAS_MODEL_FILE, suffix=".keras") as tmp:
        model.save(tmp)


def save_finished(run_dir, state, info):
    """The end of a run: state.json and run.json (`info`), both saying it is complete."""
    state["complete"] = True
    write_json(Path(run_dir) / STATE_JSON, state)
    write_json(Path(run_dir) / RUN_JSON, info)


def run_record(state, *, complete, metrics, **measured):
    """The run.json dict: its format, `complete` (true only once the final `metrics`
    are in), what state.json holds of the run, and what training `measured` and
    decided besides (data, config, options, precision, device, backend, distribution,
    learning_rate, epochs, stopping, truncated, baselines, and at the end metric,
    train_pairs, decoding, averaging, evaluation_time_s)."""
    return {
        "format_version": RUN_FORMAT_VERSION,
        "complete": complete,
        # The data's size and SHA-256 (tsv) or TFDS name and version: what a resumed
        # run must be given again (absent in runs made before it was recorded).
        "data_fingerprint": state.get("data_fingerprint"),
        # What was decided from the data (absent in runs made before these choices).
        "tokenizer": state.get("tokenizer"),
        "preset": state.get("preset"),
        "lengths": state.get("lengths"),
        "schedule": state.get("schedule"),
        "epochs_done": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "wall_time_s": state["wall_time_s"],
        "metrics": metrics,
        "history": state["history"],
        **measured,
    }


def copy_for_resuming(run_dir, target):
    """Copies what a resumed run reads (RESUME_FILES) from `run_dir` into `target`: a
    worker other than the chief trains in a directory of its own."""
    for name in RESUME_FILES:
        if (Path(run_dir) / name).is_file():
            (Path(target) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(run_dir) / name, Path(target) / name)
