"""Train a Seq2SeqTransformer on a data spec into a resumable run directory: the
script of a run, from the options to the final metrics.

    training/options.py   the options, their limits, checked before anything is written
    training/run_dir.py   the run directory: fresh, a failed start, resumed or finished,
                          and the files written in it
    training/epochs.py    when to stop, one `fit` per epoch, its line and its files

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
import tempfile
import time
import zlib
from pathlib import Path

from kit.tsv import spaces_warning

from . import averaging, baselines, distribute
from . import run_dir as rd
from .backend import compiles_every_step
from .epochs import EpochPlan, Run, log, refuse_trivial, run_info, train_epochs
from .options import TrainError, check_options, resolve_precision


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
                                            log=log)
    plan = EpochPlan.of(options)
    finished = state and plan.stop_reason(state) and rd.finished_run(out, state)
    if finished:
        log(f"{out} already holds this run, finished ({state['epochs_done']} epochs: "
            f"{plan.stop_reason(state)}); nothing to do")
        return finished
    if not writes_out:
        return _train_as_worker(options, data, state, plan, task)
    distribution = _distribution(options, task)
    pairs = _load_data(options, data, state)
    run = _prepare(options, state, pairs, out, distribution)
    train_epochs(run, options, plan)
    info = _finish(run, options, pairs, plan)
    if not options.accept_trivial:
        refuse_trivial(run)
    return info


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
        train_epochs(run, mine, plan)
        log(f"{task.kind} {task.index} done; the chief writes {options.out}")
        return run_info(run, mine, plan, metrics={}, complete=False)


def _distribution(options, task):
    """The strategy, created before any other TensorFlow op (MultiWorkerMirroredStrategy
    must set up the collectives first); TrainError where the Keras backend cannot run it
    (tf.distribute on JAX)."""
    from .backend import BackendError, check_backend

    try:
        check_backend(options.strategy, task)
    except BackendError as error:
        raise TrainError(str(error)) from None
    distribution = distribute.resolve(options.strategy, task, options.worker_timeout,
                                      log=log)
    log(distribution.describe(options.batch_size))
    return distribution


def _load_data(options, data, state, out=None):
    """The pairs of --data (`data`, already checked); for a resumed run (`state`), the
    same data it was trained on so far, or TrainError. `out`: the run's directory, as
    errors name it."""
    from .data import DataError, load_pairs

    try:
        pairs = load_pairs(data, seed=options.seed, strict=options.strict,
                           limit=options.limit)
    except DataError as error:
        raise TrainError(str(error)) from None
    if state is not None:
        rd.check_same_data(out or options.out, state, options.data, pairs.fingerprint,
                           log=log)
    spaced = spaces_warning(pairs.train + pairs.validation + pairs.test, pairs.spec)
    if spaced:
        log(spaced)
    if pairs.skipped:
        log(f"skipped {pairs.skipped} malformed line(s) (first: {pairs.skipped_lines}); "
            "--strict makes them an error")
    if not pairs.train or not pairs.validation:
        raise TrainError(f"{options.data} gave {len(pairs.train)} training and "
                         f"{len(pairs.validation)} validation pairs; both must be non-empty "
                         "(pairs are split by source: at least 3 distinct sources)")
    return pairs


def _prepare(options, state, pairs, out, distribution):
    """Precision and seeds, the run directory (fresh or resumed), the tokenized splits
    and the model (built, or loaded from the last checkpoint, under the strategy)."""
    precision, device = resolve_precision(options.precision)
    if distribution.strategy is not None:
        device = distribution.devices
    import keras

    from .losses import learning_rate_record
    from .pipeline import encode_split, make_dataset, truncate_split

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(options.seed)
    tokenizers, config, state, train_ids = _start_or_resume(options, state, pairs, out)

    lengths = (config.max_source_length, config.max_target_length)
    train_split = truncate_split(train_ids, *lengths)
    val_split = encode_split(pairs.validation, tokenizers, *lengths)
    log(f"data {options.data}: {len(pairs.train)} train, {len(pairs.validation)} validation, "
        f"{len(pairs.test)} test pairs; vocabularies {tokenizers.source.vocab_size} "
        f"(source), {tokenizers.target.vocab_size} (target); "
        f"precision {precision} on {device}")

    last = out / rd.LAST_CHECKPOINT
    with distribution.scope():
        if state["epochs_done"] and last.is_file():
            model = rd.load_keras(last, compile=True)  # the optimizer's state too
        else:
            model = _build_model(_scheduled(options, state), config)
    # XLA compiles once per distinct shape: give it a few (on JAX, always compiled).
    static = lengths if options.jit_compile or compiles_every_step() else None
    val_data = distribute.distributed_input(
        make_dataset(val_split, options.batch_size, shuffle=False, static_shapes=static),
        distribution)
    distribute.adapt_model(model, distribution, val_data.element_spec)
    _check_workers_agree(distribution, out, state)
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(out / rd.LOG_DIR))
    return Run(out, state, tokenizers, config, model, train_split, val_split, val_data, static,
               precision, device, [tensorboard], distribution,
               learning_rate_record(_scheduled(options, state), config),
               _baselines(options, config, tokenizers, pairs, train_split, val_split),
               _grouped(pairs.validation, baselines.SAMPLE_SOURCES))


def _start_or_resume(options, state, pairs, out):
    """A fresh run: choose and train the tokenizer, choose the preset and S and T, fix
    the config, keep the samples export needs. A resumed run: read them back.
    Returns (tokenizers, config, state, train_ids): tokenizers a
    `kit.tokenizers.TokenizerPair`, train_ids the training split's token ids, whole
    (`pipeline.tokenize`): tokenized once, for the choices and for training."""
    from kit.models import TransformerConfig, preset

    from .choices import (
        ChoiceError,
        choose_preset,
        choose_schedule,
        train_tokenizers,
    )
    from .lengths import LengthError, Lengths
    from .pipeline import tokenize

    if state is not None:
        log(f"resuming {out} after epoch {state['epochs_done']}")
        if "lengths" in state:
            log(Lengths(**state["lengths"]).describe())
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
        log(tokenizer_record[side].pop("message"))
    train_ids = tokenize(pairs.train, tokenizers)
    preset_name, preset_reason = choose_preset(
        options.preset, kind, len(pairs.train), sum(len(target) for _, target in train_ids))
    log(f"preset {preset_name} ({preset_reason})")
    preset_config = preset(preset_name)
    try:
        lengths = _choose_lengths(options, kind, train_ids, preset_config)
    except LengthError as error:
        raise TrainError(str(error)) from None
    log(lengths.describe())
    norm_first, warmup_steps, schedule_reason = choose_schedule(
        kind, len(pairs.train), options.batch_size, options.warmup_steps)
    log(f"schedule {schedule_reason}")
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
    from .lengths import choose_lengths

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


def _build_model(options, config):
    from kit.models import Seq2SeqTransformer

    from .losses import compile_for_training

    model = Seq2SeqTransformer(config)
    model.build()
    return compile_for_training(model, options, config)


def _scheduled(options, state):
    """`options` with the warm-up the run chose (runs made before the choice have
    none recorded: theirs was --warmup-steps, or 1000 then)."""
    chosen = (state.get("schedule") or {}).get("warmup_steps")
    return dataclasses.replace(options, warmup_steps=options.warmup_steps or chosen)


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


def _finish(run, options, pairs, plan):
    """Checkpoint averaging, task metrics of the final model, then run.json with
    `"complete": true`."""
    from .evaluate import describe_decoding

    state = run.state
    averaged = averaging.average_checkpoints(run.out, state, run.val_split,
                                             options.average_checkpoints,
                                             options.batch_size, log=log)
    final = rd.load_keras(run.out / rd.KERAS_MODEL_FILE)
    best_logs = state["history"][state["best_epoch"] - 1]
    model_logs = rd.held_by_model_keras(state)
    how = ("greedy decoding" if options.beam_size == 1
           else f"beam search of {options.beam_size} beams")
    log(f"final evaluation: {how} on up to {options.eval_samples} validation and test "
        "sources")
    started = time.monotonic()
    metrics = {"val_loss": model_logs["val_loss"],
               "val_token_accuracy": model_logs.get("val_token_accuracy",
                                                    best_logs["val_token_accuracy"]),
               **_decoding_metrics(final, run.tokenizers, pairs, options.eval_samples,
                                   options.beam_size)}
    info = run_info(run, options, plan, metrics, complete=True,
                    evaluation_time_s=round(time.monotonic() - started, 2),
                    metric=pairs.metric, train_pairs=len(pairs.train),
                    decoding=describe_decoding(options.beam_size), averaging=averaged)
    rd.save_finished(run.out, state, info)
    log("metrics: " + ", ".join(f"{k} {_format_metric(v)}" for k, v in metrics.items()))
    return info


def _decoding_metrics(model, tokenizers, pairs, samples, beam_size=1):
    """Task metrics of decoding with the KV cache (greedy, or beam search of
    `beam_size`) on the first `samples` distinct sources of the validation and test
    splits ({"val_exact_match": ..., "test_bleu": ..., ...}). An output is exact when
    it equals any of its source's targets; CER and WER take the closest one."""
    from kit.metrics import task_metrics

    from .evaluate import translate

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


def _format_metric(value):
    """2 to 4 significant digits: 'val_loss 0.1634', 'val_exact_match 99.95'."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value)
