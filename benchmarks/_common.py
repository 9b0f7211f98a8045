"""What the benchmarks share: the built-in data, the two input pipelines, the compile
call of `python -m kit train`, padding accounting, timing helpers and the worker process
of the decoding benchmarks."""

import contextlib
import gc
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.models import preset
from kit.tokenizers import CharTokenizer, TokenizerPair
from training import losses
from training.dates import default_splits
from training.options import TrainOptions
from training.pipeline import encode_split, make_dataset


@dataclass
class Data:
    """The built-in dates data, tokenized once for every contender."""

    tokenizer: CharTokenizer
    config: object  # the TransformerConfig of the preset, vocabulary sizes filled in
    train: object  # EncodedSplit
    validation: object  # EncodedSplit


def load_data(preset_name, train_size, validation_size, seed=0):
    pairs = default_splits(seed, train_size=train_size, validation_size=validation_size,
                           test_size=0)
    # One vocabulary for both sides, as the benchmarks' figures were measured with.
    tokenizer = CharTokenizer.train([text for pair in pairs["train"] for text in pair])
    config = preset(preset_name, source_vocab_size=tokenizer.vocab_size,
                    target_vocab_size=tokenizer.vocab_size)
    S, T = config.max_source_length, config.max_target_length
    both = TokenizerPair(tokenizer, tokenizer)
    return Data(tokenizer, config, encode_split(pairs["train"], both, S, T),
                encode_split(pairs["validation"], both, S, T))


def padded_to_longest(split, batch_size, seed):
    """The TF tutorial's pipeline, one epoch: shuffle, then pad each batch to its longest
    source and its longest target (no bucketing). Elements as `make_dataset`'s."""
    return make_dataset(split, batch_size, shuffle=True, seed=seed, bucket_width=None)


def bucketed(split, batch_size, seed, **kwargs):
    """Ours: `training.pipeline.make_dataset` (its keyword arguments pass through), one
    epoch."""
    return make_dataset(split, batch_size, shuffle=True, seed=seed, **kwargs)


def bucketed_validation(split, batch_size):
    """The validation batches every contender is scored on: ours, in order."""
    return make_dataset(split, batch_size, shuffle=False)


def epochs_of(pipeline, split, batch_size, epochs, seed=0, **kwargs):
    """`epochs` passes of `pipeline` one after the other, each with its own shuffle (seed +
    epoch), as the training loop does. Deterministic: two calls give the same batches."""
    dataset = pipeline(split, batch_size, seed, **kwargs)
    for epoch in range(1, epochs):
        dataset = dataset.concatenate(pipeline(split, batch_size, seed + epoch, **kwargs))
    return dataset


def set_up_then_time(script, work_dir, prefix, setup, payload):
    """What the decoding benchmarks' main does: `setup(work)` (training, export) in
    `work_dir` (or a temporary directory), then the timing in a worker process
    (`run_worker`) given `payload(info)`; returns (info, the worker's result)."""
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(work_dir) if work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        info = setup(work)
        return info, run_worker(script, tmp, payload(info))


def run_worker(script, tmp, payload):
    """Runs `python SCRIPT --worker SPEC RESULT` in a fresh process (one OpenMP thread),
    SPEC holding `payload` as JSON in `tmp`; returns the JSON the worker wrote to RESULT.
    The timing scripts measure there, away from the TensorFlow their setup loaded."""
    spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
    spec_path.write_text(json.dumps(payload), encoding="utf-8")
    subprocess.run([sys.executable, str(script), "--worker", str(spec_path),
                    str(result_path)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(result_path.read_text(encoding="utf-8"))


def compile_for_training(model, config, jit_compile):
    """Compile as `python -m kit train` does (its default options)."""
    return losses.compile_for_training(model, TrainOptions(jit_compile=jit_compile), config)


@dataclass
class BatchStats:
    """The shape and the real (non-padding) token counts of one batch."""

    shape: tuple  # (B, S', T')
    source_tokens: int
    target_tokens: int  # real labels: what "target tokens per second" counts

    @property
    def source_slots(self):
        return self.shape[0] * self.shape[1]

    @property
    def target_slots(self):
        return self.shape[0] * self.shape[2]


def batch_stats(dataset, count):
    """Stats of the first `count` batches of `dataset` (a twin of the one that is timed:
    the pipelines are deterministic, so it yields the same batches)."""
    stats = []
    for (source, _), labels, weights in dataset.take(count):
        stats.append(BatchStats((int(source.shape[0]), int(source.shape[1]),
                                 int(labels.shape[1])),
                                int(np.count_nonzero(source.numpy())),
                                int(weights.numpy().sum())))
    return stats


def padding_fractions(stats):
    """(source, target) share of the batch slots that hold padding."""
    source = sum(s.source_tokens for s in stats) / sum(s.source_slots for s in stats)
    target = sum(s.target_tokens for s in stats) / sum(s.target_slots for s in stats)
    return 1.0 - source, 1.0 - target


def build_with_one_step(model, dataset):
    """One `fit` step on the first batch: builds the model, the optimizer's variables and
    the compiled train function that `model.train_function(iterator)` then runs, one
    training step per call, exactly as `fit` does."""
    with warnings.catch_warnings():
        # One batch on purpose: no "ran out of data" or "shuffle ignored" advice needed.
        warnings.simplefilter("ignore", UserWarning)
        model.fit(dataset.take(1), epochs=1, verbose=0)
    return model


def training_iterator(model, dataset):
    """A long-lived iterator for `model.train_function`, made as `fit` makes its own (a
    plain `iter(dataset)` is another iterator type and traces the train function again)."""
    return iter(model.distribute_strategy.experimental_distribute_dataset(dataset))


@contextlib.contextmanager
def no_garbage_collection():
    """A timed segment without Python's cyclic GC, which can pause for seconds in a
    process full of traced graphs; the collection runs before, untimed (as `timeit`)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def load_average():
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
