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

import dataclasses
import json
import math
import sys
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from kit.tsv import spaces_warning
from training import averaging, baselines, distribute
from training import run_dir as rd
from training.choices import DEFAULT_DATA_WARMUP_STEPS
from training.options import LostWorkerError, TrainError, check_options, resolve_precision

DEFAULT_DATA_EPOCHS = 8  # what `--epochs auto` means for the built-in data (README's figures)


def _log(message):
    print(message, flush=True)


def compile_for_training(model, options, config):
    """Compile `model` as `python -m kit train` does: Adam 0.9/0.98/1e-9 on the paper's
    warm-up schedule (or `options.learning_rate`), the label-smoothed loss weighted by
    the pipeline's sample weights, token accuracy. The benchmarks compile with it too."""
    import keras

    from training.losses import SmoothedSparseCrossentropy, WarmupInverseSqrt, tutorial_adam

    learning_rate = (options.learning_rate if options.learning_rate is not None
                     else WarmupInverseSqrt(config.model_dim, options.warmup_steps or
                                            DEFAULT_DATA_WARMUP_STEPS))
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
    Returns (tokenizers, config, state, train_ids): tokenizers a
    `kit.tokenizers.TokenizerPair`, train_ids the training split's token ids, whole
    (`pipeline.tokenize`): tokenized once, for the choices and for training."""
    from kit.models import TransformerConfig, preset
    from training.choices import (
        ChoiceError,
        choose_preset,
        choose_schedule,
        train_tokenizers,
    )
    from training.lengths import LengthError, Lengths
    from training.pipeline import tokenize

    if state is not None:
        _log(f"resuming {out} after epoch {state['epochs_done']}")
        if "lengths" in state:
            _log(Lengths(**state["lengths"]).describe())
        # run.json stays as it is (a finished run stays exportable) until a new epoch
        # completes and replaces it; state.json says training is under way.
        state["complete"] = False
        tokenizers = rd.load_tokenizers(out)
        return (tokenizers, TransformerConfig.from_dict(state["config"]), state,
                tokenize(pairs.train, tokenizers))
    kind = pairs.kind
    try:
        tokenizers, tokenizer_record = train_tokenizers(
            pairs.train, options.source_tokenizer, options.target_tokenizer,
            options.vocab_size)
    except ChoiceError as error:
        raise TrainError(str(error)) from None
    for side in ("source", "target"):
        _log(tokenizer_record[side].pop("message"))
    train_ids = tokenize(pairs.train, tokenizers)
    preset_name, preset_reason = choose_preset(
        options.preset, kind, len(pairs.train), sum(len(target) for _, target in train_ids))
    _log(f"preset {preset_name} ({preset_reason})")
    preset_config = preset(preset_name)
    try:
        lengths = _choose_lengths(options, kind, train_ids, preset_config)
    except LengthError as error:
        raise TrainError(str(error)) from None
    _log(lengths.describe())
    norm_first, warmup_steps, schedule_reason = choose_schedule(
        kind, len(pairs.train), options.batch_size, options.warmup_steps)
    _log(f"schedule {schedule_reason}")
    try:
        config = preset(preset_name, source_vocab_size=tokenizers.source.vocab_size,
                        target_vocab_size=tokenizers.target.vocab_size, norm_first=norm_first,
                        max_source_length=lengths.source, max_target_length=lengths.target)
    except ValueError as error:
        raise TrainError(str(error)) from None
    state = rd.new_state(
        options.identity(), config.to_dict(), tokenizer=tokenizer_record,
        preset={"name": preset_name, "reason": preset_reason},
        schedule={"norm_first": norm_first, "warmup_steps": warmup_steps,
                  "reason": schedule_reason},
        lengths=lengths.to_dict(), data_fingerprint=pairs.fingerprint)
    rd.save_start(out, state, tokenizers, pairs.train, pairs.test or pairs.validation,
                  options.seed)
    return tokenizers, config, state, train_ids


def _choose_lengths(options, kind, train_ids, preset_config):
    """S and T: those given, else from the training split's token lengths (`train_ids`,
    `pipeline.tokenize`'s). The built-in data keeps its preset's (the README's figures
    were measured with them)."""
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
    lengths = choose_lengths([len(source) for source, _ in train_ids],
                             [len(target) for _, target in train_ids],
                             source=source, target=target,
                             from_preset=[{"S": "source", "T": "target"}[side]
                                          for side in from_preset])
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


def _decoding_metrics(model, tokenizers, pairs, samples, beam_size=1):
    """Task metrics of decoding with the KV cache (greedy, or beam search of
    `beam_size`) on the first `samples` distinct sources of the validation and test
    splits ({"val_exact_match": ..., "test_bleu": ..., ...}). An output is exact when
    it equals any of its source's targets; CER and WER take the closest one."""
    from training.evaluate import task_metrics, translate

    metrics = {}
    for split_name, split_pairs in (("val", pairs.validation), ("test", pairs.test)):
        grouped = _grouped(split_pairs, samples)
        if not grouped:
            continue
        hypotheses = translate(model, tokenizers, list(grouped), beam_size)
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
    data, task = check_options(options)
    writes_out = task is None or task.is_chief
    try:
        if not writes_out:  # reads the chief's --out and writes in a scratch directory
            return _train(options, data, task, writes_out)
        # The one process that writes --out holds it for the whole command: a second
        # training there would take this one's fresh start for a failed one and delete it.
        with rd.locked(options.out):
            return _train(options, data, task, writes_out)
    except rd.RunDirError as error:  # held by another training, damaged, another run's
        raise TrainError(str(error)) from None


def _train(options, data, task, writes_out):
    out = Path(options.out)
    state = rd.clear_failed_start_or_resume(out, options.identity(), owner=writes_out,
                                            log=_log)
    plan = _EpochPlan.of(options)
    finished = state and plan.stop_reason(state) and rd.finished_run(out, state)
    if finished:
        _log(f"{out} already holds this run, finished ({state['epochs_done']} epochs: "
             f"{plan.stop_reason(state)}); nothing to do")
        return finished
    if not writes_out:
        return _train_as_worker(options, data, state, plan, task)
    distribution = _distribution(options, task)
    pairs = _load_data(options, data, state)
    run = _prepare(options, state, pairs, out, distribution)
    _train_epochs(run, options, plan)
    info = _finish(run, options, pairs, plan)
    if not options.accept_trivial:
        _refuse_trivial(run)
    return info


def _refuse_trivial(run):
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


def _train_as_worker(options, data, state, plan, task):
    """A worker other than the chief: the same epochs in step with the chief (every
    worker must save too: the saves read distributed variables), into a temporary
    directory removed at the end. The chief evaluates and writes run.json."""
    with tempfile.TemporaryDirectory(prefix="kit-train-worker-") as scratch:
        if state is not None:
            rd.copy_for_resuming(options.out, scratch)
        mine = dataclasses.replace(options, out=scratch)
        distribution = _distribution(mine, task)
        pairs = _load_data(mine, data, state, out=options.out)
        run = _prepare(mine, state, pairs, Path(scratch), distribution)
        _train_epochs(run, mine, plan)
        _log(f"{task.kind} {task.index} done; the chief writes {options.out}")
        return _run_info(run, mine, plan, metrics={}, complete=False)


def _distribution(options, task):
    """The strategy, created before any other TensorFlow op (MultiWorkerMirroredStrategy
    must set up the collectives first)."""
    distribution = distribute.resolve(options.strategy, task, options.worker_timeout,
                                      log=_log)
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


def _load_data(options, data, state, out=None):
    """The pairs of --data (`data`, already checked); for a resumed run (`state`), the
    same data it was trained on so far, or TrainError. `out`: the run's directory, as
    errors name it."""
    from training.data import DataError, load_pairs

    try:
        pairs = load_pairs(data, seed=options.seed, strict=options.strict,
                           limit=options.limit)
    except DataError as error:
        raise TrainError(str(error)) from None
    if state is not None:
        rd.check_same_data(out or options.out, state, options.data, pairs.fingerprint,
                           log=_log)
    spaced = spaces_warning(pairs.train + pairs.validation + pairs.test, pairs.spec)
    if spaced:
        _log(spaced)
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
    val_split: object  # training.pipeline.EncodedSplit, for the averaged model's loss
    val_data: object
    static_shapes: tuple
    precision: str
    device: str
    callbacks: list
    distribution: object  # distribute.Distribution
    baselines: object  # training.baselines.Baselines of the validation split
    sample: dict  # validation sources decoded after each epoch -> their targets


def _prepare(options, state, pairs, out, distribution):
    """Precision and seeds, the run directory (fresh or resumed), the tokenized splits
    and the model (built, or loaded from the last checkpoint, under the strategy)."""
    precision, device = resolve_precision(options.precision)
    if distribution.strategy is not None:
        device = distribution.devices
    import keras

    from training.pipeline import encode_split, make_dataset, truncate_split

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(options.seed)
    tokenizers, config, state, train_ids = _start_or_resume(options, state, pairs, out)

    lengths = (config.max_source_length, config.max_target_length)
    train_split = truncate_split(train_ids, *lengths)
    val_split = encode_split(pairs.validation, tokenizers, *lengths)
    _log(f"data {options.data}: {len(pairs.train)} train, {len(pairs.validation)} validation, "
         f"{len(pairs.test)} test pairs; vocabularies {tokenizers.source.vocab_size} "
         f"(source), {tokenizers.target.vocab_size} (target); "
         f"precision {precision} on {device}")

    last = out / rd.LAST_CHECKPOINT
    with distribution.scope():
        if state["epochs_done"] and last.is_file():
            model = rd.load_keras(last, compile=True)  # the optimizer's state too
        else:
            model = _build_model(_scheduled(options, state), config)
    # XLA compiles once per distinct shape: give it a few.
    static = lengths if options.jit_compile else None
    val_data = distribute.distributed_input(
        make_dataset(val_split, options.batch_size, shuffle=False, static_shapes=static),
        distribution)
    distribute.adapt_model(model, distribution, val_data.element_spec)
    _check_workers_agree(distribution, out, state)
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(out / rd.LOG_DIR))
    return _Run(out, state, tokenizers, config, model, train_split, val_split, val_data, static,
                precision, device, [tensorboard], distribution,
                _baselines(options, config, tokenizers, pairs, train_split, val_split),
                _grouped(pairs.validation, baselines.SAMPLE_SOURCES))


def _baselines(options, config, tokenizers, pairs, train_split, val_split):
    """The trivial baselines every epoch is compared with (training/baselines.py)."""
    return baselines.measure(
        train_split.targets, val_split.targets, config.target_vocab_size,
        tokenizers.target.eos_id, options.label_smoothing,
        [target for _, target in pairs.train],
        list(_grouped(pairs.validation, len(pairs.validation)).values()))


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
        verdict = _judge(run, logs)
        elapsed = time.monotonic() - started
        _save_epoch(run, options, plan, logs, elapsed, verdict)
        _log(_epoch_line(state, plan, logs, elapsed))
        if verdict.trivial:
            _log(_trivial_line(run, epoch + 1, verdict))
    _log(f"training stops: {plan.stop_reason(state)}; model.keras is epoch "
         f"{state['best_epoch']} (lowest val_loss {state['best_val_loss']:.4f})")


def _judge(run, logs):
    """This epoch against the trivial baselines, with a decoded sample of validation
    sources (skipped across several workers: each would decode it)."""
    outputs = references = None
    if run.sample and run.distribution.workers == 1:
        from training.evaluate import greedy_translate

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
    info = _run_info(dataclasses.replace(run, state=state), options, plan, metrics={},
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


def _format_metric(value):
    """2 to 4 significant digits: 'val_loss 0.1634', 'val_exact_match 99.95'."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value)


def _finish(run, options, pairs, plan):
    """Checkpoint averaging, task metrics of the final model, then run.json with
    `"complete": true`."""
    from training.evaluate import describe_decoding

    state = run.state
    averaged = _average_checkpoints(run, options)
    final = rd.load_keras(run.out / rd.KERAS_MODEL_FILE)
    best_logs = state["history"][state["best_epoch"] - 1]
    model_logs = rd.held_by_model_keras(state)
    how = ("greedy decoding" if options.beam_size == 1
           else f"beam search of {options.beam_size} beams")
    _log(f"final evaluation: {how} on up to {options.eval_samples} validation and test "
         "sources")
    started = time.monotonic()
    metrics = {"val_loss": model_logs["val_loss"],
               "val_token_accuracy": model_logs.get("val_token_accuracy",
                                                    best_logs["val_token_accuracy"]),
               **_decoding_metrics(final, run.tokenizers, pairs, options.eval_samples,
                                   options.beam_size)}
    info = _run_info(run, options, plan, metrics, complete=True,
                     evaluation_time_s=round(time.monotonic() - started, 2),
                     metric=pairs.metric, train_pairs=len(pairs.train),
                     decoding=describe_decoding(options.beam_size), averaging=averaged)
    rd.save_finished(run.out, state, info)
    _log("metrics: " + ", ".join(f"{k} {_format_metric(v)}" for k, v in metrics.items()))
    return info


def _scheduled(options, state):
    """`options` with the warm-up the run chose (runs made before the choice have
    none recorded: theirs was --warmup-steps, or 1000 then)."""
    chosen = (state.get("schedule") or {}).get("warmup_steps")
    return dataclasses.replace(options, warmup_steps=options.warmup_steps or chosen)


def _average_checkpoints(run, options):
    """Averages the weights of the last `--average-checkpoints` epochs; the mean becomes
    model.keras when its validation loss is not above that of what model.keras holds
    (the best epoch). Returns run.json's "averaging" record (None when turned off)."""
    from training.pipeline import make_dataset

    k, state = options.average_checkpoints, run.state
    if not k:
        return None
    epochs = averaging.averaged_epochs(state["history"], k)
    files = averaging.kept_weight_files(run.out / rd.CHECKPOINT_DIR)
    epochs = [epoch for epoch in epochs if epoch in files]
    current = rd.held_by_model_keras(state)
    record = {"k": k, "epochs": epochs, "best_single_val_loss": state["best_val_loss"],
              "best_epoch": state["best_epoch"]}
    if len(epochs) < 2:
        _log(f"checkpoint averaging: skipped ({len(epochs)} epoch weight file(s) kept)")
        return {**record, "kept": False, "val_loss": None}
    # A model outside the training strategy: the chief alone evaluates.
    model = rd.load_keras(run.out / rd.KERAS_MODEL_FILE, compile=True)
    model.set_weights(averaging.average_weights(
        model, [files[epoch] for epoch in epochs]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        logs = model.evaluate(make_dataset(run.val_split, options.batch_size, shuffle=False),
                              verbose=0, return_dict=True)
    kept = logs["loss"] <= current["val_loss"]
    if kept:
        rd.save_model(run.out, model)
        state["model_keras"] = {"epochs": epochs, "val_loss": logs["loss"],
                                "val_token_accuracy": logs["token_accuracy"]}
    _log(f"checkpoint averaging of epochs {epochs[0]}-{epochs[-1]}: val_loss "
         f"{logs['loss']:.4f} against {current['val_loss']:.4f} for "
         f"{_epochs_text(current['epochs'])}; model.keras is "
         f"{'the average' if kept else _epochs_text(current['epochs'])}")
    return {**record, "kept": kept, "val_loss": logs["loss"],
            "val_token_accuracy": logs["token_accuracy"]}


def _epochs_text(epochs):
    return f"epoch {epochs[0]}" if len(epochs) == 1 else \
        f"the average of epochs {epochs[0]}-{epochs[-1]}"


def _learning_rate_info(options, config):
    """The schedule as run.json states it: per global batch, whatever the replicas."""
    per = "optimizer step: one per global batch, the same on every --strategy"
    if options.learning_rate is not None:
        return {"schedule": "constant", "value": options.learning_rate, "per": per}
    return {"schedule": "warmup_inverse_sqrt", "model_dim": config.model_dim,
            "warmup_steps": options.warmup_steps or DEFAULT_DATA_WARMUP_STEPS,
            "formula": "model_dim^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)",
            "per": per}


def _run_info(run, options, plan, metrics, complete, **extra):
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
        distribution=run.distribution.to_dict(options.batch_size),
        learning_rate=_learning_rate_info(_scheduled(options, state), run.config),
        epochs=options.epochs,
        stopping={**plan.to_dict(), "stopped": plan.stop_reason(state)},
        truncated={"source": run.train_split.source_truncated,
                   "target": run.train_split.target_truncated},
        # What every epoch was compared with; each history entry has its verdict.
        baselines=run.baselines.to_dict(),
        **extra)
