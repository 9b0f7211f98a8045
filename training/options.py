"""What `python -m kit train` takes: its options, their limits, and its errors.

Every option is checked here before any file is written or TensorFlow is imported, so
that a bad value fails at once with one line and leaves nothing behind.
"""

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from . import distribute
from .choices import PRESET_CHOICES, TOKENIZERS

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# The beams of the final evaluation (run.json's metrics); 1 is greedy decoding.
DEFAULT_BEAM_SIZE = 4
# The epochs whose weights are averaged into the final model (0: no averaging), and so
# the per-epoch weight files kept in checkpoints/.
DEFAULT_AVERAGE_CHECKPOINTS = 5


class TrainError(ValueError):
    """A user error: bad data, a directory that holds another run, a diverged loss."""


class LostWorkerError(TrainError):
    """A worker of a multi-worker cluster went away: this process's collectives are
    broken, and so is a clean exit (see training/cli.py)."""


@dataclass
class TrainOptions:
    """What `python -m kit train` takes; the identity of a run (all but `epochs`)."""

    data: str = "default"  # default | tsv:PATH | tfds:NAME[/CONFIG]
    out: str = "runs/default"  # the run directory
    preset: str = "auto"  # auto | tiny | small | base (auto: training/choices.py)
    epochs: int | str = "auto"  # a number, or auto: 8 for default data, else early stopping
    patience: int = 3  # auto epochs: stop after this many epochs without a better val_loss
    max_epochs: int = 100  # auto epochs: never more than this
    source_tokenizer: str = "auto"  # auto | char | word | sentencepiece (training/choices.py)
    target_tokenizer: str = "auto"  # the same, for the targets: each side has its own
    vocab_size: int = None  # each side's; None: every symbol, or a SentencePiece size from the data
    batch_size: int = 64
    precision: str = "auto"  # auto: mixed_float16 with a GPU, float32 without
    seed: int = 0
    learning_rate: float = None  # None: the warm-up schedule of the paper
    warmup_steps: int = None  # None: one epoch of steps (training/choices.py)
    label_smoothing: float = 0.1
    max_source_length: int = None  # None: S from the data (default data: the preset's)
    max_target_length: int = None  # None: T from the data (default data: the preset's)
    limit: int = None  # cap on pairs per split (tsv, tfds)
    strict: bool = False  # fail on malformed tsv lines instead of skipping them
    jit_compile: bool = False  # XLA; measured slower here on 2 CPU cores (see README)
    eval_samples: int = 2000  # sentences decoded for exact match / BLEU
    beam_size: int = DEFAULT_BEAM_SIZE  # beams of the final evaluation (1: greedy)
    average_checkpoints: int = DEFAULT_AVERAGE_CHECKPOINTS  # epochs averaged (0: none)
    strategy: str = "auto"  # auto | one_device | mirrored | multi_worker (distribute.py)
    worker_timeout: float = distribute.WORKER_TIMEOUT_S  # s, for the workers to connect
    # Exit 0 when the best epoch is no better than the trivial baselines (plumbing tests,
    # or a user who wants the run anyway); training/baselines.py
    accept_trivial: bool = False

    def identity(self):
        """What must not change between the commands of one run: all but when to stop
        (so `--epochs auto` runs resume, and a number extends a finished run), where
        it is, how much and how to evaluate, how many epochs to average, and the
        strategy: every strategy takes the same global batches and makes one update
        per global batch (training/distribute.py), so a run may go on over more or
        fewer devices."""
        values = dataclasses.asdict(self)
        for field in ("epochs", "patience", "max_epochs", "out", "eval_samples", "strategy",
                      "accept_trivial", "beam_size", "average_checkpoints"):
            values.pop(field)
        return values


# Bounds of the numeric options: wide enough for any real run, narrow enough that a
# typo (an extra zero, a minus sign) fails at once instead of after an epoch.
MAX_TRAIN_LENGTH = 1024  # S and T: the exported file's fixed shapes and its KV cache
LIMITS = {  # option: (smallest, largest)
    "epochs": (1, 10_000),
    "patience": (1, 1_000),
    "max_epochs": (1, 10_000),
    "vocab_size": (8, 1_000_000),  # the specials and a few tokens; SentencePiece's ids
    "batch_size": (1, 65_536),
    "warmup_steps": (1, 10_000_000),
    "seed": (0, 2**31 - 1),
    "limit": (1, 10**9),
    "eval_samples": (0, 10**7),
    "beam_size": (1, 64),  # as `decode` and `evaluate`
    "average_checkpoints": (0, 100),
    "max_source_length": (1, MAX_TRAIN_LENGTH),
    "max_target_length": (3, MAX_TRAIN_LENGTH),  # BOS, at least one token, EOS
}


def check_options(options):
    """Every option checked before any file is written or TensorFlow is imported, so a
    bad value fails at once with one line and leaves nothing behind.

    Returns:
        (data, task): the checked --data (`training.data.DataSpec`, for the data to be
        read without checking it again) and this process's multi-worker
        `distribute.Task`, or None for a single process.
    """
    from .data import DataError, check_spec

    for name, (low, high) in LIMITS.items():
        value = getattr(options, name)
        if value is None and name in ("limit", "max_source_length", "max_target_length",
                                      "vocab_size", "warmup_steps"):
            continue
        if name == "epochs" and value == "auto":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            flag = "--" + name.replace("_", "-")
            also = " (or auto)" if name == "epochs" else ""
            raise TrainError(f"{flag} must be an integer from {low} to {high}{also}, "
                             f"got {value!r}")
    if options.learning_rate is not None and not (
            isinstance(options.learning_rate, (int, float))
            and math.isfinite(options.learning_rate) and options.learning_rate > 0):
        raise TrainError(f"--learning-rate must be a positive number, got "
                         f"{options.learning_rate!r}")
    if not (isinstance(options.label_smoothing, (int, float))
            and 0 <= options.label_smoothing < 1):
        raise TrainError(f"--label-smoothing must be in [0, 1), got {options.label_smoothing!r}")
    if not (isinstance(options.worker_timeout, (int, float))
            and not isinstance(options.worker_timeout, bool)
            and 1 <= options.worker_timeout <= 86400):
        raise TrainError("--worker-timeout must be a number of seconds from 1 to 86400, got "
                         f"{options.worker_timeout!r}")
    for flag, value, choices in (("--precision", options.precision, PRECISIONS),
                                 ("--source-tokenizer", options.source_tokenizer, TOKENIZERS),
                                 ("--target-tokenizer", options.target_tokenizer, TOKENIZERS),
                                 ("--preset", options.preset, PRESET_CHOICES)):
        if value not in choices:
            raise TrainError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
    try:
        data = check_spec(options.data)
    except DataError as error:
        raise TrainError(str(error)) from None
    try:
        task = distribute.check_strategy(options.strategy)
    except distribute.DistributeError as error:
        raise TrainError(str(error)) from None
    _check_writable(Path(options.out))
    return data, task


def _check_writable(out):
    """--out must be (or be creatable as) a directory we can write in."""
    from kit.files import link_loop

    if link_loop(out):
        raise TrainError(f"--out {out} is a symbolic link loop (or too deep to follow); "
                         "choose another directory")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise TrainError(f"--out {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TrainError(f"--out {out}: cannot write in {existing} (permission denied)")


def resolve_precision(precision):
    """(the Keras dtype policy of --precision, the device it runs on, in words): the GPUs
    of the backend that trains (training/backend.py)."""
    from .backend import gpu_names

    gpus = gpu_names()
    device = f"GPU x{len(gpus)} ({gpus[0]})" if gpus else "CPU"
    if precision == "auto":
        precision = "mixed_float16" if gpus else "float32"
    return precision, device
