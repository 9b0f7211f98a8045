import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


def default_sigint():
    """`preexec_fn` for a child that a test interrupts with SIGINT: a shell starts
    background jobs (and so, maybe, CI's pytest) with SIGINT ignored, which children
    inherit, and Python then installs no KeyboardInterrupt handler. Give the child the
    default, as a terminal would."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def small_memory():
    """`preexec_fn` for a child that must not read an endless file (/dev/zero) into
    memory: 2 GiB of address space makes that a quick MemoryError, not a machine that
    swaps, so a regression fails the test instead of the machine."""
    import resource

    limit = 2 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_under_pytest(tmp_path_factory):
    """Libraries' own temporary directories (tfds's mock data makes one per load) go
    under pytest's base temp, which pytest prunes, instead of piling up in /tmp."""
    import tempfile

    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
    yield
    tempfile.tempdir = previous


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from float32 and a fixed seed, whatever the previous one did."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")

# -- a tiny trained run directory and its bundles, shared by export/, kit/runtime and
# command tests. The run is the `tiny` preset sized for the dates data (S 44 for sources
# of at most 40 characters, T 12 for BOS + 10 characters + EOS), trained with model.fit
# for about 300 steps: enough to decode most dates right, so the comparisons with Keras
# are made on non-trivial outputs. It builds in about 10 s on 2 cores.

import numpy as np  # noqa: E402

SOURCE_LENGTH = 44
TARGET_LENGTH = 12


def make_run_dir(path, policy="float32", epochs=6, train_size=3000, complete=True,
                 legacy=False):
    """Trains a tiny model on the dates data and writes a run directory to `path`, with
    a character tokenizer per side (the sources' vocabulary larger than the targets').
    `legacy`: one tokenizer.json for both sides, as runs made before were.

    Returns the trained Keras model (in `policy`).
    """
    import keras

    from kit.files import write_json
    from kit.models import Seq2SeqTransformer, preset
    from kit.tokenizers import BOS_ID, EOS_ID, CharTokenizer, TokenizerPair
    from training import dates
    from training.run_dir import (
        KERAS_MODEL_FILE,
        LEGACY_TOKENIZER_FILE,
        RUN_FORMAT_VERSION,
        RUN_JSON,
        TEST_SAMPLE,
        TRAIN_SAMPLE,
        save_tokenizers,
        write_pairs,
    )

    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        splits = dates.default_splits(0, train_size=train_size, validation_size=10,
                                      test_size=64)
        if legacy:
            shared = CharTokenizer.train([text for pair in splits["train"] for text in pair])
            tokenizers = TokenizerPair(shared, shared)
        else:
            tokenizers = TokenizerPair(CharTokenizer.train(s for s, _ in splits["train"]),
                                       CharTokenizer.train(t for _, t in splits["train"]))
        config = preset("tiny", source_vocab_size=tokenizers.source.vocab_size,
                        target_vocab_size=tokenizers.target.vocab_size,
                        max_source_length=SOURCE_LENGTH, max_target_length=TARGET_LENGTH)

        def padded(ids, length):
            return ids[:length] + [0] * (length - len(ids[:length]))

        source = np.array([padded(tokenizers.source.encode(s), SOURCE_LENGTH)
                           for s, _ in splits["train"]], np.int32)
        target = np.array([padded([BOS_ID] + tokenizers.target.encode(t) + [EOS_ID],
                                  TARGET_LENGTH) for _, t in splits["train"]], np.int32)
        model = Seq2SeqTransformer(config)
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                      ignore_class=0))
        model.fit((source, target[:, :-1]), target[:, 1:], batch_size=64, epochs=epochs,
                  verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")

    path.mkdir(parents=True, exist_ok=True)
    model.save(path / KERAS_MODEL_FILE)
    if legacy:
        tokenizers.source.save(path / LEGACY_TOKENIZER_FILE)
    else:
        save_tokenizers(path, tokenizers)
    write_pairs(path / TRAIN_SAMPLE, splits["train"][:300])
    write_pairs(path / TEST_SAMPLE, splits["test"])
    write_json(path / RUN_JSON, {
        "format_version": RUN_FORMAT_VERSION, "complete": complete, "config": config.to_dict(),
        "data": "default", "metric": "exact_match", "precision": policy,
        "epochs": epochs, "epochs_done": epochs if complete else epochs - 1,
        "metrics": {"exact_match": None}})
    return model


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny"
    make_run_dir(path)
    return path


@pytest.fixture(scope="session")
def tiny_float32_bundle(tiny_run, tmp_path_factory):
    """`export --recipe float32` of the tiny run, with few samples: the cheapest bundle."""
    from export.cli import export_run

    out = tmp_path_factory.mktemp("bundles") / "tiny-float32"
    export_run(tiny_run, "float32", out, samples=8, progress=lambda message: None)
    return out


@pytest.fixture(scope="session")
def tiny_bundles(tiny_run, tmp_path_factory):
    """`export --recipe all` of the tiny run, once: (bundles dir, comparison report)."""
    from export.cli import export_run

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    report = export_run(tiny_run, "all", out, samples=32, progress=lambda message: None)
    return out, report
