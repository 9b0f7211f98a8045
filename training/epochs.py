"""The epochs of a run: when to stop, one `fit` per epoch, its line, its judgement
against the trivial baselines, and its files saved all or none.

Each epoch has its own shuffled dataset (seed + epoch), so an interrupted run resumed
from its last completed epoch sees the data order an uninterrupted one would have.
"""

import dataclasses
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import averaging, baselines, distribute
from . import run_dir as rd
from .backend import keras_backend
from .options import LostWorkerError, TrainError

DEFAULT_DATA_EPOCHS = 8  # what `--epochs auto` means for the built-in data (README's figures)


def log(message):
    """A line of the train command's output, flushed at once: a log file, or the
    terminal of a multi-worker run, shows each line as it happens."""
    print(message, flush=True)


@dataclass
class Run:
    """What the epochs need, prepared once."""

    out: Path
    state: dict
    tokenizers: object  # kit.tokenizers.TokenizerPair
    config: object
    model: object
    train_split: object
    val_split: object  # training.pipeline.EncodedSplit, for the averaged model's loss
    val_data: object
    static_shapes: tuple
    precision: str
    device: str
    callbacks: list
    distribution: object  # distribute.Distribution
    learning_rate: dict  # run.json's record of the schedule
    baselines: object  # training.baselines.Baselines of the validation split
    sample: dict  # validation sources decoded after each epoch -> their targets


@dataclass
class EpochPlan:
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


def train_epochs(run, options, plan):
    """One `fit` call per epoch over that epoch's own shuffled data (seed + epoch),
    until `plan` says stop; after each, the checkpoints, state.json and run.json are
    replaced atomically, so an interruption loses at most the epoch under way.

    In a terminal Keras shows its progress bar; in a log (not a tty) there is one line
    per epoch, ours."""
    from .pipeline import make_dataset

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
        verdict = _judge(run, logs)
        elapsed = time.monotonic() - started
        _save_epoch(run, options, plan, logs, elapsed, verdict)
        log(_epoch_line(state, plan, logs, elapsed))
        if verdict.trivial:
            log(_trivial_line(run, epoch + 1, verdict))
    log(f"training stops: {plan.stop_reason(state)}; model.keras is epoch "
        f"{state['best_epoch']} (lowest val_loss {state['best_val_loss']:.4f})")


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


def _judge(run, logs):
    """This epoch against the trivial baselines, with a decoded sample of validation
    sources (skipped across several workers: each would decode it)."""
    outputs = references = None
    if run.sample and run.distribution.workers == 1:
        from .evaluate import greedy_translate

        outputs = greedy_translate(run.model, run.tokenizers, list(run.sample))
        references = list(run.sample.values())
    majority = run.tokenizers.target.decode([run.baselines.majority_token]) or "</s>"
    return baselines.judge(run.baselines, logs["val_loss"], logs["val_token_accuracy"],
                           outputs, references, token_name=repr(majority),
                           sources=list(run.sample) if outputs else None)


def _trivial_line(run, epoch, verdict):
    """One line: which baselines the epoch does not beat, and (after the first epoch,
    which may just be early) the likely cause and the flag to try."""
    line = (f"epoch {epoch} is no better than a trivial baseline: "
            f"{'; '.join(verdict.reasons)}")
    if epoch > 1:
        kind = rd.target_tokenizer_kind(run.state)
        line += (f". Likely cause: "
                 f"{baselines.likely_cause(run.baselines, kind, len(run.train_split))}")
    return line


def refuse_trivial(run):
    """A run whose best epoch is still no better than a trivial baseline ends in an
    error (its files are kept: the user may look, or resume with more epochs)."""
    state = run.state
    verdict = state["history"][state["best_epoch"] - 1].get("baselines_verdict")
    if verdict and verdict["trivial"]:
        kind = rd.target_tokenizer_kind(state)
        raise TrainError(
            f"the model learned nothing useful: its best epoch ({state['best_epoch']}) is "
            f"no better than a trivial baseline ({'; '.join(verdict['reasons'])}). Likely "
            f"cause: {baselines.likely_cause(run.baselines, kind, len(run.train_split))}. "
            f"The run is kept in {run.out} (run.json says what was measured; "
            "--accept-trivial exits 0 all the same)")


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


def _duration(seconds):
    """'42 s', '3 min 05 s', '1 h 07 min': for the per-epoch line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _save_epoch(run, options, plan, logs, elapsed, verdict):
    """The epoch in the run's state, and its checkpoints, state.json and run.json
    saved all or none (`run_dir.save_epoch`): a full disk leaves the previous epoch's
    files and state as they were, which the same command resumes from."""
    state, out = _copy(run.state), run.out
    epoch = state["epochs_done"] + 1
    state["history"].append({"epoch": epoch, "wall_time_s": round(elapsed, 2), **logs,
                             "baselines_verdict": verdict.to_dict()})
    improved = state["best_val_loss"] is None or logs["val_loss"] < state["best_val_loss"]
    if improved:
        state["best_val_loss"], state["best_epoch"] = logs["val_loss"], epoch
        state["model_keras"] = {"epochs": [epoch], "val_loss": logs["val_loss"]}
    state["epochs_done"] = epoch
    state["wall_time_s"] = round(state["wall_time_s"] + elapsed, 2)
    info = run_info(dataclasses.replace(run, state=state), options, plan, metrics={},
                    complete=False)
    weights = averaging.EPOCH_WEIGHTS.format(epoch) if options.average_checkpoints else None
    try:
        rd.save_epoch(out, state, info, run.model, best=improved, weights_name=weights)
        # Only once state.json says this epoch is done: a kill before this line leaves
        # one file too many, which the next epoch's pruning removes.
        averaging.prune_weight_files(out / rd.CHECKPOINT_DIR, averaging.averaged_epochs(
            state["history"], options.average_checkpoints))
    except OSError as error:  # a full disk, a quota: the machine's refusal, not a bug
        kept = f"as of epoch {epoch - 1}" if epoch > 1 else "with no epoch"
        raise TrainError(f"{error.strerror or error} while saving epoch {epoch} in {out}; "
                         f"the run is kept {kept}: make room, then run the same command "
                         "to resume") from None
    run.state.clear()
    run.state.update(state)


def _copy(values):
    return json.loads(json.dumps(values))


def run_info(run, options, plan, metrics, complete, **extra):
    """The run.json dict (`run_dir.run_record`); `complete` only once the final
    metrics are in."""
    state = run.state
    return rd.run_record(
        state, complete=complete, metrics=metrics,
        data=options.data,
        config=run.config.to_dict(),
        options=dataclasses.asdict(options),
        precision=run.precision,
        device=run.device,
        backend=keras_backend(),  # the Keras backend that trained (training/backend.py)
        distribution=run.distribution.to_dict(options.batch_size),
        learning_rate=run.learning_rate,
        epochs=options.epochs,
        stopping={**plan.to_dict(), "stopped": plan.stop_reason(state)},
        truncated={"source": run.train_split.source_truncated,
                   "target": run.train_split.target_truncated},
        # What every epoch was compared with; each history entry has its verdict.
        baselines=run.baselines.to_dict(),
        **extra)
