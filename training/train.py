"""Train a Seq2SeqTransformer on a data spec into a resumable run directory.

The loop runs one `fit` call per epoch over that epoch's own shuffled dataset (seed +
epoch), then checkpoints. An interrupted run, started again with the same arguments,
continues from the last completed epoch and sees the same data order it would have
seen without the interruption.

What the user does not say is decided from the training split and printed: each
side's tokenizer and the model size (training/choices.py), S and T (training/lengths.py), and
how long to train (`--epochs auto`: until the validation loss has not improved for
`--patience` epochs, at most `--max-epochs`; the built-in data keeps its measured 8).

`--strategy` spreads the epochs over several devices or hosts (training/distribute.py);
the default, one device, runs exactly as the kit always did.
"""

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from kit.files import json_text, remove_partial_writes, replacing, write_json, write_synced
from training import distribute
from training import run_dir as rd
from training.choices import PRESETS, TOKENIZERS

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DEFAULT_DATA_EPOCHS = 8  # what `--epochs auto` means for the built-in data (README's figures)
TRAIN_SAMPLE_SIZE = 500  # calibration sentences kept for int8 export
TEST_SAMPLE_SIZE = 1000  # held-out sentences kept for export's verification


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
    warmup_steps: int = 1000
    label_smoothing: float = 0.1
    max_source_length: int = None  # None: S from the data (default data: the preset's)
    max_target_length: int = None  # None: T from the data (default data: the preset's)
    limit: int = None  # cap on pairs per split (tsv, tfds)
    strict: bool = False  # fail on malformed tsv lines instead of skipping them
    jit_compile: bool = False  # XLA; measured slower here on 2 CPU cores (see README)
    eval_samples: int = 2000  # sentences greedily decoded for exact match / BLEU
    strategy: str = "auto"  # auto | one_device | mirrored | multi_worker (distribute.py)

    def identity(self):
        """What must not change between the commands of one run: all but when to stop
        (so `--epochs auto` runs resume, and a number extends a finished run), where
        it is, how much to evaluate, and the strategy: every strategy takes the same
        global batches and makes one update per global batch (training/distribute.py),
        so a run may go on over more or fewer devices."""
        values = dataclasses.asdict(self)
        for field in ("epochs", "patience", "max_epochs", "out", "eval_samples", "strategy"):
            values.pop(field)
        return values


# Identity fields added after runs were made: an older run's state.json lacks them, and
# it was made with what these values mean.
_IDENTITY_ADDED = {"vocab_size": None}


def _identity_of(state):
    """The identity a state.json records, in today's fields. A run made before each side
    had its own tokenizer recorded one "tokenizer" for both (default "auto")."""
    identity = {**_IDENTITY_ADDED, **state.get("identity", {})}
    if "source_tokenizer" not in identity:
        shared = identity.pop("tokenizer", "auto")
        identity.update(source_tokenizer=shared, target_tokenizer=shared)
    return identity


def _log(message):
    print(message, flush=True)


# Bounds of the numeric options: wide enough for any real run, narrow enough that a
# typo (an extra zero, a minus sign) fails at once instead of after an epoch.
MAX_LENGTH = 1024  # S and T: the exported file's fixed shapes and its KV cache
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
    "max_source_length": (1, MAX_LENGTH),
    "max_target_length": (3, MAX_LENGTH),  # BOS, at least one token, EOS
}


def check_options(options):
    """Every option checked before any file is written or TensorFlow is imported, so a
    bad value fails at once with one line and leaves nothing behind."""
    from training.data import DataError, check_spec

    for name, (low, high) in LIMITS.items():
        value = getattr(options, name)
        if value is None and name in ("limit", "max_source_length", "max_target_length",
                                      "vocab_size"):
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
    for flag, value, choices in (("--precision", options.precision, PRECISIONS),
                                 ("--source-tokenizer", options.source_tokenizer, TOKENIZERS),
                                 ("--target-tokenizer", options.target_tokenizer, TOKENIZERS),
                                 ("--preset", options.preset, PRESETS)):
        if value not in choices:
            raise TrainError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
    try:
        check_spec(options.data)
    except DataError as error:
        raise TrainError(str(error)) from None
    _cluster_task(options)
    _check_writable(Path(options.out))


def _cluster_task(options):
    """This process's multi-worker Task, or None for a single process."""
    try:
        return distribute.check_strategy(options.strategy)
    except distribute.DistributeError as error:
        raise TrainError(str(error)) from None


def _check_writable(out):
    """--out must be (or be creatable as) a directory we can write in."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise TrainError(f"--out {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TrainError(f"--out {out}: cannot write in {existing} (permission denied)")


def resolve_precision(precision):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU x{len(gpus)} ({gpus[0].name})" if gpus else "CPU"
    if precision == "auto":
        precision = "mixed_float16" if gpus else "float32"
    return precision, device


# What a fresh start writes before its first epoch completes; a start that failed
# (bad data found late, a NaN in epoch 1, Ctrl-C) leaves only these, and the next
# command may remove them rather than refuse the directory.
FRESH_START_FILES = (*rd.TOKENIZER_FILES, rd.SAMPLES_DIR, rd.CHECKPOINT_DIR, rd.LOG_DIR)


def _check_out_dir(options, clear_failed_start=True):
    """None for a fresh run, the saved state to resume from, or TrainError. A worker
    that is not the chief reads the chief's --out and passes clear_failed_start=False:
    it never changes it."""
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} exists and is not a directory")
    state_path = out / rd.CHECKPOINT_DIR / "state.json"
    if not out.exists() or not any(out.iterdir()):
        return None
    if not state_path.is_file():
        raise TrainError(f"--out {out} is not empty and holds no run of ours; "
                         "choose another directory")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainError(f"{state_path} is damaged ({error}); choose another --out") from None
    if not isinstance(state, dict):
        raise TrainError(f"{state_path} is damaged (not a JSON object); choose another --out")
    if clear_failed_start:  # the chief owns --out: a save killed mid-write left these
        remove_partial_writes(out, (rd.RUN_JSON, rd.KERAS_MODEL_FILE, *rd.TOKENIZER_FILES))
        remove_partial_writes(out / rd.CHECKPOINT_DIR, ("state.json", "last.keras"))
    if _is_failed_start(out, state):
        if not clear_failed_start:
            return None
        # Also with the same arguments: such a start may have died before writing its
        # tokenizer or samples, and redoing it costs no completed epoch.
        _log(f"{out} holds a start that completed no epoch; starting afresh")
        for name in FRESH_START_FILES:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        return None
    theirs, ours = _identity_of(state), options.identity()
    if theirs != ours:
        differing = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise TrainError(f"--out {out} holds a different run (differs in: "
                         f"{', '.join(differing)}); choose another --out or repeat its arguments")
    return state


def _is_failed_start(out, state):
    return (state.get("epochs_done") == 0 and not state.get("complete")
            and all(entry.name in FRESH_START_FILES for entry in out.iterdir()))


def compile_for_training(model, options, config):
    """Compile `model` as `python -m kit train` does: Adam 0.9/0.98/1e-9 on the paper's
    warm-up schedule (or `options.learning_rate`), the label-smoothed loss weighted by
    the pipeline's sample weights, token accuracy. The benchmarks compile with it too."""
    import keras

    from training.losses import SmoothedSparseCrossentropy, WarmupInverseSqrt, tutorial_adam

    learning_rate = (options.learning_rate if options.learning_rate is not None
                     else WarmupInverseSqrt(config.model_dim, options.warmup_steps))
    model.compile(
        optimizer=tutorial_adam(learning_rate),
        loss=SmoothedSparseCrossentropy(options.label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
        jit_compile=options.jit_compile,
    )
    return model


def _build_model(options, config):
    from kit.models import Seq2SeqTransformer

    model = Seq2SeqTransformer(config)
    model.build()
    return compile_for_training(model, options, config)


def _nan_guard():
    import keras

    class NaNGuard(keras.callbacks.Callback):
        """Stops at the first non-finite loss and remembers where."""

        def __init__(self):
            super().__init__()
            self.where = None

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.where = batch
                self.model.stop_training = True

    return NaNGuard()


def _start_or_resume(options, state, pairs, out):
    """A fresh run: choose and train the tokenizer, choose the preset and S and T, fix
    the config, keep the samples export needs. A resumed run: read them back.
    Returns (tokenizers, config, state): tokenizers a `kit.tokenizers.TokenizerPair`."""
    from kit.models import TransformerConfig, preset
    from training.choices import ChoiceError, choose_preset, train_tokenizers
    from training.data import check_spec
    from training.lengths import LengthError, Lengths

    if state is not None:
        _log(f"resuming {out} after epoch {state['epochs_done']}")
        if "lengths" in state:
            _log(Lengths(**state["lengths"]).describe())
        # run.json stays as it is (a finished run stays exportable) until a new epoch
        # completes and replaces it; state.json says training is under way.
        state["complete"] = False
        try:
            tokenizers = rd.load_tokenizers(out)
        except rd.RunDirError as error:
            raise TrainError(str(error)) from None
        return tokenizers, TransformerConfig.from_dict(state["config"]), state
    kind = check_spec(options.data)[0]
    try:
        tokenizers, tokenizer_record = train_tokenizers(
            pairs.train, options.source_tokenizer, options.target_tokenizer,
            options.vocab_size)
    except ChoiceError as error:
        raise TrainError(str(error)) from None
    for side in ("source", "target"):
        _log(tokenizer_record[side].pop("message"))
    preset_name, preset_reason = choose_preset(options.preset, kind, len(pairs.train))
    _log(f"preset {preset_name} ({preset_reason})")
    preset_config = preset(preset_name)
    try:
        lengths = _choose_lengths(options, kind, pairs, tokenizers, preset_config)
    except LengthError as error:
        raise TrainError(str(error)) from None
    _log(lengths.describe())
    try:
        config = preset(preset_name, source_vocab_size=tokenizers.source.vocab_size,
                        target_vocab_size=tokenizers.target.vocab_size,
                        max_source_length=lengths.source, max_target_length=lengths.target)
    except ValueError as error:
        raise TrainError(str(error)) from None
    state = {"identity": options.identity(), "config": config.to_dict(), "epochs_done": 0,
             "best_val_loss": None, "best_epoch": None, "wall_time_s": 0.0, "history": [],
             "tokenizer": tokenizer_record,
             "preset": {"name": preset_name, "reason": preset_reason},
             "lengths": lengths.to_dict()}
    # state.json first: whatever a failure (a full disk, Ctrl-C, SIGKILL) leaves after
    # it is a start the next command recognizes and clears (`_is_failed_start`), where
    # files without it would make the directory look like someone else's.
    write_json(out / rd.CHECKPOINT_DIR / "state.json", state)
    rd.save_tokenizers(out, tokenizers)
    rng = random.Random(options.seed)
    rd.write_pairs(out / rd.TRAIN_SAMPLE,
                   rng.sample(pairs.train, min(TRAIN_SAMPLE_SIZE, len(pairs.train))))
    rd.write_pairs(out / rd.TEST_SAMPLE, (pairs.test or pairs.validation)[:TEST_SAMPLE_SIZE])
    return tokenizers, config, state


def _choose_lengths(options, kind, pairs, tokenizers, preset_config):
    """S and T: those given, else from the training split's token lengths. The built-in
    data keeps its preset's (the README's figures were measured with them)."""
    from training.lengths import choose_lengths

    source, target = options.max_source_length, options.max_target_length
    from_preset = []
    if kind == "default":
        if source is None:
            source = preset_config.max_source_length
            from_preset.append("S")
        if target is None:
            target = preset_config.max_target_length
            from_preset.append("T")
    lengths = choose_lengths([len(tokenizers.source.encode(s)) for s, _ in pairs.train],
                             [len(tokenizers.target.encode(t)) for _, t in pairs.train],
                             source=source, target=target)
    if len(from_preset) == 2:
        lengths.chosen = "the preset's"
    elif from_preset:
        lengths.chosen = f"{from_preset[0]} the preset's"
    return lengths


def _grouped(pairs, samples):
    """The first `samples` distinct sources of `pairs`, each with all its targets:
    alternative right answers (a word's two pronunciations), in order."""
    grouped = {}
    for source, target in pairs:
        if source in grouped:
            grouped[source].append(target)
        elif len(grouped) < samples:
            grouped[source] = [target]
    return grouped


def _decoding_metrics(model, tokenizers, pairs, samples):
    """Task metrics of greedy decoding with the KV cache on the first `samples`
    distinct sources of the validation and test splits ({"val_exact_match": ...,
    "test_bleu": ..., ...}). An output is exact when it equals any of its source's
    targets; CER and WER take the closest one."""
    from training.evaluate import greedy_translate, task_metrics

    metrics = {}
    for split_name, split_pairs in (("val", pairs.validation), ("test", pairs.test)):
        grouped = _grouped(split_pairs, samples)
        if not grouped:
            continue
        hypotheses = greedy_translate(model, tokenizers, list(grouped))
        for name, value in task_metrics(pairs.metric, hypotheses,
                                        list(grouped.values())).items():
            metrics[f"{split_name}_{name}"] = round(value, 3)
        metrics[f"{split_name}_decoded"] = len(grouped)
    return metrics


def train(options):
    """Run (or resume) training; returns the run.json dict. Raises TrainError.

    The steps: check every option (no TensorFlow yet), look at --out (fresh, resume,
    finished, or refused), load the data, prepare the run directory and the model,
    train the missing epochs, then evaluate the best model and write run.json.
    """
    check_options(options)
    task = _cluster_task(options)
    writes_out = task is None or task.is_chief
    state = _check_out_dir(options, clear_failed_start=writes_out)
    out = Path(options.out)
    plan = _EpochPlan.of(options)
    if _finished(out, state, plan):
        _log(f"{out} already holds this run, finished ({state['epochs_done']} epochs: "
             f"{plan.stop_reason(state)}); nothing to do")
        return json.loads((out / rd.RUN_JSON).read_text(encoding="utf-8"))
    if not writes_out:
        return _train_as_worker(options, state, plan, task)
    distribution = _distribution(options, task)
    pairs = _load_data(options)
    run = _prepare(options, state, pairs, out, distribution)
    _train_epochs(run, options, plan)
    return _finish(run, options, pairs, plan)


# What a worker other than the chief copies from the chief's --out to resume with.
_RESUME_FILES = (*rd.TOKENIZER_FILES, f"{rd.CHECKPOINT_DIR}/state.json",
                 f"{rd.CHECKPOINT_DIR}/last.keras")


def _train_as_worker(options, state, plan, task):
    """A worker other than the chief: the same epochs in step with the chief (every
    worker must save too: the saves read distributed variables), into a temporary
    directory removed at the end. The chief evaluates and writes run.json."""
    with tempfile.TemporaryDirectory(prefix="kit-train-worker-") as scratch:
        if state is not None:
            for name in _RESUME_FILES:
                if (Path(options.out) / name).is_file():
                    (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(Path(options.out) / name, Path(scratch) / name)
        mine = dataclasses.replace(options, out=scratch)
        distribution = _distribution(mine, task)
        pairs = _load_data(mine)
        run = _prepare(mine, state, pairs, Path(scratch), distribution)
        _train_epochs(run, mine, plan)
        _log(f"{task.kind} {task.index} done; the chief writes {options.out}")
        return _run_info(run, mine, plan, metrics={}, complete=False)


def _distribution(options, task):
    """The strategy, created before any other TensorFlow op (MultiWorkerMirroredStrategy
    must set up the collectives first)."""
    distribution = distribute.resolve(options.strategy, task)
    _log(distribution.describe(options.batch_size))
    return distribution


@dataclass
class _EpochPlan:
    """When training stops: after `total` epochs, or (with `patience`) once the
    validation loss has not improved for `patience` epochs, whichever comes first."""

    total: int  # the most epochs
    patience: int = None  # None: exactly `total` epochs

    @classmethod
    def of(cls, options):
        if options.epochs != "auto":
            return cls(options.epochs)
        if options.data == "default":
            return cls(DEFAULT_DATA_EPOCHS)
        return cls(options.max_epochs, options.patience)

    def stop_reason(self, state):
        """Why training is over after the epochs in `state`, or None to go on."""
        done, best = state["epochs_done"], state.get("best_epoch")
        if self.patience and best and done - best >= self.patience:
            return (f"val_loss has not improved for {done - best} epochs, best at epoch "
                    f"{best}")
        if done >= self.total:
            return f"{'the most, ' if self.patience else ''}{self.total} epochs done"
        return None

    def to_dict(self):
        return {"max_epochs": self.total, "patience": self.patience,
                "rule": "fixed" if self.patience is None else "until no improvement"}


def _finished(out, state, plan):
    """The run in `out` is over by `plan` and has a run.json that says so."""
    if not state or plan.stop_reason(state) is None:
        return False
    try:
        info = json.loads((out / rd.RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(info.get("complete")) and info.get("epochs_done") == state["epochs_done"]


def _load_data(options):
    from training.data import DataError, load_pairs

    try:
        pairs = load_pairs(options.data, seed=options.seed, strict=options.strict,
                           limit=options.limit)
    except DataError as error:
        raise TrainError(str(error)) from None
    if pairs.skipped:
        _log(f"skipped {pairs.skipped} malformed line(s) (first: {pairs.skipped_lines}); "
             "--strict makes them an error")
    if not pairs.train or not pairs.validation:
        raise TrainError(f"{options.data} gave {len(pairs.train)} training and "
                         f"{len(pairs.validation)} validation pairs; both must be non-empty "
                         "(pairs are split by source: at least 3 distinct sources)")
    return pairs


@dataclass
class _Run:
    """What the epochs need, prepared once."""

    out: Path
    state: dict
    tokenizers: object  # kit.tokenizers.TokenizerPair
    config: object
    model: object
    train_split: object
    val_data: object
    static_shapes: tuple
    precision: str
    device: str
    callbacks: list
    distribution: object  # distribute.Distribution


def _prepare(options, state, pairs, out, distribution):
    """Precision and seeds, the run directory (fresh or resumed), the tokenized splits
    and the model (built, or loaded from the last checkpoint, under the strategy)."""
    precision, device = resolve_precision(options.precision)
    if distribution.strategy is not None:
        device = distribution.devices
    import keras

    from training.pipeline import encode_split, make_dataset

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(options.seed)
    tokenizers, config, state = _start_or_resume(options, state, pairs, out)

    lengths = (config.max_source_length, config.max_target_length)
    train_split = encode_split(pairs.train, tokenizers, *lengths)
    val_split = encode_split(pairs.validation, tokenizers, *lengths)
    _log(f"data {options.data}: {len(pairs.train)} train, {len(pairs.validation)} validation, "
         f"{len(pairs.test)} test pairs; vocabularies {tokenizers.source.vocab_size} "
         f"(source), {tokenizers.target.vocab_size} (target); "
         f"precision {precision} on {device}")

    last = out / rd.CHECKPOINT_DIR / "last.keras"
    with distribution.scope():
        if state["epochs_done"] and last.is_file():
            model = _load_checkpoint(last, compile=True)  # the optimizer's state too
        else:
            model = _build_model(options, config)
    # XLA compiles once per distinct shape: give it a few.
    static = lengths if options.jit_compile else None
    val_data = distribute.distributed_input(
        make_dataset(val_split, options.batch_size, shuffle=False, static_shapes=static),
        distribution)
    distribute.adapt_model(model, distribution, val_data.element_spec)
    _check_workers_agree(distribution, out, state)
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(out / rd.LOG_DIR))
    return _Run(out, state, tokenizers, config, model, train_split, val_data, static,
                precision, device, [tensorboard], distribution)


def _check_workers_agree(distribution, out, state):
    """Every worker must start from the same epoch, config and tokenizer: one that
    cannot see the chief's --out would start afresh while the chief resumes."""
    if distribution.workers == 1:
        return
    tokenizers = [zlib.crc32(path.read_bytes()) for path in rd.tokenizer_json_files(out)]
    run = json.dumps([state["epochs_done"], state["config"], tokenizers], sort_keys=True)
    if not distribute.workers_agree(distribution, run):
        raise TrainError(f"the workers disagree on the run (this one is after epoch "
                         f"{state['epochs_done']}): start every worker with the same "
                         "command, where each sees the chief's --out (one host or a "
                         "shared file system)")


def _duration(seconds):
    """'42 s', '3 min 05 s', '1 h 07 min': for the per-epoch line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _epoch_line(state, plan, logs, elapsed):
    """'epoch 3/8: 41 s; 2 min 05 s so far, about 3 min 25 s left; val_loss ...'."""
    done = state["epochs_done"]
    # The first epoch of a process also builds the graph: the later ones say more.
    times = [entry["wall_time_s"] for entry in state["history"]]
    times = times[1:] or times
    left = sum(times) / len(times) * (plan.total - done)
    if done >= plan.total:
        remaining = "the last epoch"
    elif plan.patience is None:
        remaining = f"about {_duration(left)} left"
    else:
        remaining = (f"at most {_duration(left)} left (until val_loss has not improved for "
                     f"{plan.patience} epochs)")
    best = " (best)" if state["best_epoch"] == done else f" (best: epoch {state['best_epoch']})"
    return (f"epoch {done}/{plan.total}: {_duration(elapsed)}; "
            f"{_duration(state['wall_time_s'])} so far, {remaining}; val_loss "
            f"{logs['val_loss']:.4f}{best}, val_token_accuracy {logs['val_token_accuracy']:.4f}")


def _one_epoch_callback():
    import keras

    class OneEpoch(keras.callbacks.Callback):
        """Ends `fit` after one epoch. `fit` is called with epochs=the plan's total and
        initial_epoch=this epoch, so that Keras's progress bar header reads "Epoch
        3/8" and not "Epoch 3/3"; each epoch has its own shuffled dataset, so each is
        its own `fit` call."""

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return OneEpoch()


def _train_epochs(run, options, plan):
    """One `fit` call per epoch over that epoch's own shuffled data (seed + epoch),
    until `plan` says stop; after each, the checkpoints, state.json and run.json are
    replaced atomically, so an interruption loses at most the epoch under way.

    In a terminal Keras shows its progress bar; in a log (not a tty) there is one line
    per epoch, ours."""
    from training.pipeline import make_dataset

    state = run.state
    while plan.stop_reason(state) is None:
        epoch = state["epochs_done"]
        started = time.monotonic()
        guard = _nan_guard()
        train_data = distribute.distributed_input(
            make_dataset(run.train_split, options.batch_size, shuffle=True,
                         seed=options.seed * 100_003 + epoch, static_shapes=run.static_shapes),
            run.distribution)
        with warnings.catch_warnings():
            # Bucketed batches have no known count: Keras warns at each epoch's end.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            try:
                history = run.model.fit(train_data, validation_data=run.val_data,
                                        epochs=plan.total, initial_epoch=epoch, shuffle=False,
                                        callbacks=[guard, _one_epoch_callback(),
                                                   *run.callbacks],
                                        verbose=1 if sys.stdout.isatty() else 0)
            except Exception as error:
                if run.distribution.workers > 1 and distribute.lost_worker(error):
                    raise LostWorkerError(
                        f"a worker of the cluster stopped during epoch {epoch + 1} "
                        f"({type(error).__name__}); nothing of this epoch was saved. Start "
                        "every worker again with the same command to resume") from None
                raise
        if guard.where is not None:
            raise TrainError(f"the loss became NaN at epoch {epoch + 1}, batch {guard.where + 1}; "
                             "nothing of this epoch was saved. Lower --learning-rate, or "
                             "train with --precision float32")
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        elapsed = time.monotonic() - started
        _save_epoch(run, options, plan, logs, elapsed)
        _log(_epoch_line(state, plan, logs, elapsed))
    _log(f"training stops: {plan.stop_reason(state)}; model.keras is epoch "
         f"{state['best_epoch']} (lowest val_loss {state['best_val_loss']:.4f})")


def _save_epoch(run, options, plan, logs, elapsed):
    """The epoch's checkpoints, state.json and run.json, all or none: every file is
    written beside its old self first, and only once all are written (a full disk
    fails one of these writes) are they renamed over the old ones. A failure leaves
    the previous epoch's files and state as they were, which the same command resumes
    from."""
    state, out = _copy(run.state), run.out
    epoch = state["epochs_done"] + 1
    state["history"].append({"epoch": epoch, "wall_time_s": round(elapsed, 2), **logs})
    improved = state["best_val_loss"] is None or logs["val_loss"] < state["best_val_loss"]
    if improved:
        state["best_val_loss"], state["best_epoch"] = logs["val_loss"], epoch
    state["epochs_done"] = epoch
    state["wall_time_s"] = round(state["wall_time_s"] + elapsed, 2)
    info = _run_info(dataclasses.replace(run, state=state), options, plan, metrics={},
                     complete=False)
    # Renamed in the reverse order of entry: the models, run.json, then state.json,
    # which is what the next command resumes from.
    try:
        with contextlib.ExitStack() as stack:
            def staged(path, suffix=".tmp"):
                return stack.enter_context(replacing(path, suffix=suffix))

            state_tmp = staged(out / rd.CHECKPOINT_DIR / "state.json")
            run_tmp = staged(out / rd.RUN_JSON)
            run.model.save(staged(out / rd.CHECKPOINT_DIR / "last.keras", ".keras"))
            if improved:
                run.model.save(staged(out / rd.KERAS_MODEL_FILE, ".keras"))
            write_synced(run_tmp, json_text(info))
            write_synced(state_tmp, json_text(state))
    except OSError as error:  # a full disk, a quota: the machine's refusal, not a bug
        kept = f"as of epoch {epoch - 1}" if epoch > 1 else "with no epoch"
        raise TrainError(f"{error.strerror or error} while saving epoch {epoch} in {out}; "
                         f"the run is kept {kept}: make room, then run the same command "
                         "to resume") from None
    run.state.clear()
    run.state.update(state)


def _load_checkpoint(path, compile=False):
    """One of the run's .keras files (`run_dir.load_keras`), a damaged one as TrainError."""
    try:
        return rd.load_keras(path, compile=compile)
    except rd.RunDirError as error:
        raise TrainError(str(error)) from None


def _copy(values):
    return json.loads(json.dumps(values))


def _format_metric(value):
    """2 to 4 significant digits: 'val_loss 0.1634', 'val_exact_match 99.95'."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value)


def _finish(run, options, pairs, plan):
    """Task metrics of the best model, then run.json with `"complete": true`."""
    state = run.state
    best = _load_checkpoint(run.out / rd.KERAS_MODEL_FILE)
    best_logs = state["history"][state["best_epoch"] - 1]
    started = time.monotonic()
    metrics = {"val_loss": best_logs["val_loss"],
               "val_token_accuracy": best_logs["val_token_accuracy"],
               **_decoding_metrics(best, run.tokenizers, pairs, options.eval_samples)}
    info = _run_info(run, options, plan, metrics, complete=True,
                     evaluation_time_s=round(time.monotonic() - started, 2),
                     metric=pairs.metric, train_pairs=len(pairs.train))
    state["complete"] = True
    write_json(run.out / rd.CHECKPOINT_DIR / "state.json", state)
    write_json(run.out / rd.RUN_JSON, info)
    _log("metrics: " + ", ".join(f"{k} {_format_metric(v)}" for k, v in metrics.items()))
    return info


def _learning_rate_info(options, config):
    """The schedule as run.json states it: per global batch, whatever the replicas."""
    per = "optimizer step: one per global batch, the same on every --strategy"
    if options.learning_rate is not None:
        return {"schedule": "constant", "value": options.learning_rate, "per": per}
    return {"schedule": "warmup_inverse_sqrt", "model_dim": config.model_dim,
            "warmup_steps": options.warmup_steps,
            "formula": "model_dim^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)",
            "per": per}


def _run_info(run, options, plan, metrics, complete, **extra):
    """The run.json dict; `complete` only once the final metrics are in."""
    state = run.state
    return {
        "format_version": rd.RUN_FORMAT_VERSION,
        "complete": complete,
        "data": options.data,
        "config": run.config.to_dict(),
        "options": dataclasses.asdict(options),
        # What was decided from the data (absent in runs made before these choices).
        "tokenizer": state.get("tokenizer"),
        "preset": state.get("preset"),
        "lengths": state.get("lengths"),
        "precision": run.precision,
        "device": run.device,
        "distribution": run.distribution.to_dict(options.batch_size),
        "learning_rate": _learning_rate_info(options, run.config),
        "epochs": options.epochs,
        "stopping": {**plan.to_dict(), "stopped": plan.stop_reason(state)},
        "epochs_done": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "wall_time_s": state["wall_time_s"],
        "truncated": {"source": run.train_split.source_truncated,
                      "target": run.train_split.target_truncated},
        "metrics": metrics,
        "history": state["history"],
        **extra,
    }
