"""The run directory: what training leaves behind and export reads.

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
      checkpoints/       the last completed epoch, for resuming (not needed by export)
      logs/              TensorBoard
      train.lock         held (fcntl.flock) by the training that writes the directory,
                         with its PID; removed when it ends, left by a killed one

`run.json` is written last and atomically, with `"complete": true` only once training
has finished: a directory without it is a run in progress or an interrupted one.

A run made before each side had its own tokenizer holds one `tokenizer.json` (and
`tokenizer.model`) for both sides: `load_tokenizers` reads it as the tokenizer of each.
"""

import contextlib
import errno
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kit.files import atomic_write
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
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
LOCK_FILE = "train.lock"
LEGACY_TOKENIZER_FILE = "tokenizer.json"  # one for both sides, in runs made before
# Every tokenizer file a run may hold: the JSON files and the SentencePiece models
# named after them (kit/tokenizers/sentencepiece.py).
TOKENIZER_FILES = tuple(f"{stem}.{suffix}" for stem in ("source_tokenizer",
                                                        "target_tokenizer", "tokenizer")
                        for suffix in ("json", "model"))


class RunDirError(ValueError):
    """A run directory that is missing, unfinished or damaged (one line for the user)."""


class RunDirLocked(RunDirError):
    """Another training holds the run directory (`locked`)."""


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

    import kit.models  # noqa: F401  (registers the kit's classes for loading)
    import training.losses  # noqa: F401  (the loss and schedule of a compiled checkpoint)

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
                       raw=raw)
    except KeyError as error:
        raise RunDirError(f"{info_path} lacks the field {error}") from None
