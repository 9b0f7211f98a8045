"""Bundles for the device tests, and what ai-edge-litert and Keras make of them.

    python -m tests.device.make_bundles OUT_DIR

Run in the main environment (TensorFlow, Keras, ai-edge-litert). Trains the tiny run
of tests/conftest.py (`make_run_dir`) into OUT_DIR/run, exports all four recipes into
OUT_DIR/bundles (`export --recipe all`) and writes OUT_DIR/expected.json: for a fixed
list of 200 sources (the run's held-out samples and unusual ones: empty, blank, very
long, unseen characters, digits only, ...), the ids and text that each recipe decodes
to with ai-edge-litert, and the Keras model's greedy ids. tests/device/ then decodes
the same bundles in environments with only numpy and an interpreter (ai-edge-litert,
or tflite-runtime with numpy<2) and compares.

It also trains a tiny run with SentencePiece on both sides, on real translations
(JupyterLab's French interface messages, a package of requirements.txt), into
OUT_DIR/sentencepiece/run, exports it into OUT_DIR/sentencepiece/<recipe> for
SENTENCEPIECE_RECIPES, and lists its sources in expected.json's "sentencepiece": what
the C decode loop (tests/device/test_c_loop.py) reads through the SentencePiece
library.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

from kit.runtime.recipes import RECIPES

EXPECTED_JSON = "expected.json"
BUNDLES = "bundles"
RUN = "run"
SOURCES = 200
EXPORT_SAMPLES = 32  # what tests/conftest.py's tiny_bundles verifies on
SENTENCEPIECE = "sentencepiece"  # OUT_DIR/sentencepiece/: the SentencePiece run, bundles
SENTENCEPIECE_RECIPES = ("float32", "dynamic_int8")
SENTENCEPIECE_PAIRS = 1200  # of JupyterLab's French messages (1,077 to train on)
SENTENCEPIECE_SOURCES = 120  # its held-out messages, then unusual sources


def unusual_sources(count, seed=0):
    """`count` sources a user or a file may hand the device: fixed, then generated."""
    fixed = [
        "", " ", "\t", "   \n  ", "0", "00000000", "1234567890", "9" * 40, "9" * 400,
        "29.11.2026", "2026-11-29", "Sun 29 Nov 2026 " * 30, "x" * 1000,
        "Sun 29 Nov 2026", "SUN 29 NOV 2026", "sun 29 nov 2026", "29 Nov", "Nov 2026",
        "Dimanche 29 novembre 2026", "29 ноября 2026", "2026年11月29日", "٢٩ نوفمبر ٢٠٢٦",
        "🙂 29 Nov 2026 🙂", "\u200b29\u200bNov\u200b2026", "29\u00a0Nov\u00a02026",
        "\x00\x01\x02", "<s></s><pad><unk>", "!!!???...", "é" * 50, "Ω≈ç√∫",
        "a", "Z", ".", "-", "/", "29/11/2026", "11/29/2026", "2026/11/29", "Nov. 29th, 2026",
        "the twenty-ninth of November", "29th of Never 2026", "31 Feb 2026", "0 Jan 0000",
    ]
    rng = random.Random(seed)
    alphabets = ["0123456789", "0123456789 ./-", "abcdefghijklmnopqrstuvwxyz ",
                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.",
                 "äöüßéèêàçñøåæœ€£¥§¶†‡•…‰′″‹›«»“”‘’", "абвгдежзийклмнопрстуфхцчшщыьэюя ",
                 "日月年火水木金土一二三四五六七八九十", "🙂🙃😀🎉🚀✨🔥💧🌍"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec"]
    sources = list(fixed)
    while len(sources) < count:
        kind = rng.randrange(4)
        if kind == 0:  # random characters, mostly unseen or out of place
            alphabet = rng.choice(alphabets)
            length = rng.choice([1, 2, 5, 12, 30, 44, 45, 80, 300])
            sources.append("".join(rng.choice(alphabet) for _ in range(length)))
        elif kind == 1:  # digits only
            sources.append("".join(rng.choice("0123456789")
                                   for _ in range(rng.randint(1, 60))))
        elif kind == 2:  # a date-like text with a character replaced by an unusual one
            text = list(f"{rng.randint(0, 99)} {rng.choice(months)} {rng.randint(0, 9999)}")
            text[rng.randrange(len(text))] = rng.choice(rng.choice(alphabets))
            sources.append("".join(text))
        else:  # a date-like text repeated, cut or padded past S
            text = f"{rng.randint(1, 31)} {rng.choice(months)} {rng.randint(1000, 2999)} "
            sources.append((text * rng.randint(1, 20))[:rng.randint(1, 200)])
    return sources[:count]


def device_sources(run_dir, count=SOURCES):
    """(sources, n): the run's n held-out sources, then unusual ones up to `count`."""
    from training.run_dir import TEST_SAMPLE, read_pairs

    held_out = [source for source, _ in read_pairs(Path(run_dir) / TEST_SAMPLE)][:count]
    return held_out + unusual_sources(count - len(held_out)), len(held_out)


def keras_greedy_ids(model, tokenizers, sources, batch_size=100):
    """The Keras model's greedy ids (EOS included when reached), row by row: sources
    encoded by `tokenizers.source` (a `kit.tokenizers.TokenizerPair`)."""
    import numpy as np

    from kit.decoding import until_eos
    from kit.tokenizers import BOS_ID, EOS_ID, source_ids

    S = model.config.max_source_length
    ids = np.array([source_ids(tokenizers.source, s, S) for s in sources],
                   np.int32).reshape(-1, S)
    rows = []
    for start in range(0, len(ids), batch_size):
        decoded = model.greedy_decode(ids[start:start + batch_size], BOS_ID, EOS_ID)
        rows += [[int(t) for t in until_eos(row, EOS_ID)] for row in decoded]
    return rows


def runtime_outputs(bundle_dir, sources):
    """{"ids": [...], "texts": [...]}: `Bundle.greedy_ids` of each source's ids (also for
    blank sources, which `translate` answers with "" without running the model) and
    `Bundle.translate`."""
    from kit.runtime import Bundle

    bundle = Bundle.load(bundle_dir)
    return {"ids": [[int(t) for t in bundle.greedy_ids(bundle.source_ids(s))]
                    for s in sources],
            "texts": [bundle.translate(s) for s in sources]}


def write_expected(out, run_dir, bundles_dir, model):
    """Writes OUT/expected.json for the bundles in `bundles_dir` (made from `run_dir`,
    whose trained Keras model is `model`)."""
    from importlib.metadata import version

    from kit.files import write_json
    from kit.runtime.interpreter import interpreter_class
    from training.run_dir import load_tokenizers

    module = interpreter_class().__module__.split(".")[0]
    if module != "ai_edge_litert":
        raise SystemExit(f"expected outputs are made with ai_edge_litert, not {module}")
    sources, held_out = device_sources(run_dir)
    tokenizers = load_tokenizers(run_dir)
    expected = {
        "format_version": 1,
        "made_with": {"interpreter": module,
                      **{name: version(name) for name in
                         ("ai-edge-litert", "tensorflow-cpu", "keras", "numpy")}},
        "sources": sources,
        "held_out": held_out,  # sources[:held_out] are the run's held-out samples
        "keras": {"ids": keras_greedy_ids(model, tokenizers, sources)},
        "recipes": {recipe: runtime_outputs(Path(bundles_dir) / recipe, sources)
                    for recipe in RECIPES},
    }
    write_json(Path(out) / EXPECTED_JSON, expected)
    return expected


def build_sentencepiece(out, progress=lambda message: None):
    """Trains and exports the SentencePiece run under `out` (a new directory); returns
    expected.json's "sentencepiece": {"recipes": [...], "sources": [...]}."""
    import random

    from benchmarks.tasks.messages import catalog_pairs
    from export.cli import export_run
    from training.options import TrainOptions
    from training.run_dir import TEST_SAMPLE, read_pairs
    from training.train import train

    out = Path(out)
    out.mkdir(parents=True)
    pairs = catalog_pairs("jupyterlab_language_pack_fr_FR")
    random.Random(0).shuffle(pairs)
    data = out / "messages.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:SENTENCEPIECE_PAIRS]),
                    encoding="utf-8")
    progress(f"training the SentencePiece run on {SENTENCEPIECE_PAIRS} French messages")
    train(TrainOptions(data=f"tsv:{data}", out=str(out / RUN), preset="tiny",
                       source_tokenizer=SENTENCEPIECE, target_tokenizer=SENTENCEPIECE,
                       max_source_length=48, max_target_length=64, epochs=2,
                       accept_trivial=True, batch_size=32, eval_samples=8))
    for recipe in SENTENCEPIECE_RECIPES:
        progress(f"exporting the SentencePiece run: {recipe}")
        export_run(out / RUN, recipe, out / recipe, samples=8, progress=progress,
                   batch_sizes=(1,))
    held_out = [source for source, _ in read_pairs(out / RUN / TEST_SAMPLE)]
    count = SENTENCEPIECE_SOURCES - min(len(held_out), SENTENCEPIECE_SOURCES // 2)
    return {"recipes": list(SENTENCEPIECE_RECIPES),
            "sources": held_out[:SENTENCEPIECE_SOURCES // 2] + unusual_sources(count)}


def build(out, progress=lambda message: None):
    """Trains the tiny run, exports all recipes, writes expected.json, under `out`;
    then the SentencePiece run (`build_sentencepiece`)."""
    from export.cli import export_run
    from kit.files import write_json
    from tests.conftest import make_run_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress("training the tiny run")
    model = make_run_dir(out / RUN)
    progress("exporting all recipes")
    export_run(out / RUN, "all", out / BUNDLES, samples=EXPORT_SAMPLES, progress=progress)
    progress("decoding with ai-edge-litert and Keras")
    expected = write_expected(out, out / RUN, out / BUNDLES, model)
    expected[SENTENCEPIECE] = build_sentencepiece(out / SENTENCEPIECE, progress)
    write_json(out / EXPECTED_JSON, expected)
    return expected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a new or empty directory")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    from kit.quiet import quiet_libraries

    quiet_libraries()
    start = time.monotonic()
    expected = build(args.out, progress=lambda m: print(f"make_bundles: {m}", file=sys.stderr,
                                                         flush=True))
    agree = {recipe: sum(a == b for a, b in zip(outputs["ids"], expected["keras"]["ids"]))
             for recipe, outputs in expected["recipes"].items()}
    print(json.dumps({"out": str(args.out), "sources": len(expected["sources"]),
                      "agree_with_keras": agree,
                      "seconds": round(time.monotonic() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
