"""Checkpoint averaging: the mean of the weights of a run's last epochs.

Averaging the weights of the last few checkpoints (Vaswani et al. 2017 averaged the
last 5 or 20) smooths the noise of the last updates: the mean usually sits nearer the
middle of the valley the epochs walked around. `python -m kit train` keeps the
weights of the epochs it may average in checkpoints/ (`epoch_NNN.weights.h5`) and
prunes the others as epochs go, so that a resumed run averages the same epochs as one
that was never interrupted; at the end, the mean replaces model.keras if it is better.
"""

import re
import warnings
from pathlib import Path

import numpy as np

from . import run_dir as rd

EPOCH_WEIGHTS = "epoch_{:03d}.weights.h5"  # in checkpoints/: one epoch's weights
_EPOCH_WEIGHTS = re.compile(r"epoch_(\d+)\.weights\.h5")


def averaged_epochs(history, k):
    """The epochs (1-based, ascending) whose weights are averaged and so kept: the last
    `k` of `history` (run.json's list of {"epoch": ...}); none for k = 0."""
    return [entry["epoch"] for entry in history[-k:]] if k else []


def kept_weight_files(directory):
    """{epoch: path} of the per-epoch weight files in `directory`."""
    found = {}
    for path in Path(directory).glob("epoch_*.weights.h5"):
        match = _EPOCH_WEIGHTS.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def prune_weight_files(directory, keep):
    """Removes the per-epoch weight files of the epochs not in `keep`, and what a save
    killed mid-write left of one (`kit.files.replacing`'s hidden temporaries)."""
    for epoch, path in kept_weight_files(directory).items():
        if epoch not in keep:
            path.unlink(missing_ok=True)
    for path in Path(directory).glob(".epoch_*.weights.h5.*"):
        path.unlink(missing_ok=True)


def average_weights(model, paths):
    """The element-wise mean of the weights in `paths` (files written by
    `model.save_weights` from models of `model`'s architecture), as a list for
    `model.set_weights`. Loads each file into `model` in turn: `model` ends holding the
    last one. Weights that are not floating point (a counter, a seed) are taken from
    the last file."""
    total = None
    for path in paths:
        model.load_weights(str(path))
        weights = model.get_weights()
        if total is None:
            total = [np.array(w, np.float64) if np.issubdtype(w.dtype, np.floating) else w
                     for w in weights]
            continue
        for i, w in enumerate(weights):
            total[i] = total[i] + w if np.issubdtype(w.dtype, np.floating) else w
    return [(t / len(paths)).astype(w.dtype) if np.issubdtype(w.dtype, np.floating) else t
            for t, w in zip(total, weights)]


def average_checkpoints(run_dir, state, val_split, k, batch_size, log=print):
    """Averages the weights of the last `k` epochs (`--average-checkpoints`) of the run
    in `run_dir` whose state is `state`; the mean becomes model.keras, and `state` says
    so, when its loss on `val_split` (a `training.pipeline.EncodedSplit`) is not above
    that of what model.keras holds (the best epoch). Returns run.json's "averaging"
    record (None when k is 0)."""
    from .pipeline import make_dataset

    if not k:
        return None
    epochs = averaged_epochs(state["history"], k)
    files = kept_weight_files(Path(run_dir) / rd.CHECKPOINT_DIR)
    epochs = [epoch for epoch in epochs if epoch in files]
    current = rd.held_by_model_keras(state)
    record = {"k": k, "epochs": epochs, "best_single_val_loss": state["best_val_loss"],
              "best_epoch": state["best_epoch"]}
    if len(epochs) < 2:
        log(f"checkpoint averaging: skipped ({len(epochs)} epoch weight file(s) kept)")
        return {**record, "kept": False, "val_loss": None}
    # A model outside the training strategy: the chief alone evaluates.
    model = rd.load_keras(Path(run_dir) / rd.KERAS_MODEL_FILE, compile=True)
    model.set_weights(average_weights(model, [files[epoch] for epoch in epochs]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        logs = model.evaluate(make_dataset(val_split, batch_size, shuffle=False),
                              verbose=0, return_dict=True)
    kept = logs["loss"] <= current["val_loss"]
    if kept:
        rd.save_model(run_dir, model)
        state["model_keras"] = {"epochs": epochs, "val_loss": logs["loss"],
                                "val_token_accuracy": logs["token_accuracy"]}
    log(f"checkpoint averaging of epochs {epochs[0]}-{epochs[-1]}: val_loss "
        f"{logs['loss']:.4f} against {current['val_loss']:.4f} for "
        f"{_epochs_text(current['epochs'])}; model.keras is "
        f"{'the average' if kept else _epochs_text(current['epochs'])}")
    return {**record, "kept": kept, "val_loss": logs["loss"],
            "val_token_accuracy": logs["token_accuracy"]}


def _epochs_text(epochs):
    return f"epoch {epochs[0]}" if len(epochs) == 1 else \
        f"the average of epochs {epochs[0]}-{epochs[-1]}"
