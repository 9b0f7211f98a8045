"""A user's own data with no flag beyond --data and --out: the tokenizer, the model
size, S and T and the number of epochs are chosen from the data and printed; a
SentencePiece run goes through export to a bundle that decodes as the Keras model."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training import dates
from training import run_dir as rd
from training.choices import (
    BASE_PRESET_MIN_PAIRS,
    BASE_PRESET_MIN_TARGET_TOKENS,
    LARGE_PRESET_MIN_PAIRS,
    LARGE_PRESET_MIN_TARGET_TOKENS,
    MAX_SUBWORD_VOCAB,
    TextStats,
    choose_preset,
    choose_tokenizer_kind,
    subword_vocab_size,
    train_tokenizer,
)
from training.data import load_pairs
from training.train import DEFAULT_BEAM_SIZE, TrainOptions, _EpochPlan, _grouped

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

# A made-up pronunciation dictionary: one phone (with a stress digit on vowels) per
# letter, space-separated, as in CMUdict ("cat" -> "K AE1 T").
PHONES = {"a": "AE1", "b": "B", "c": "K", "d": "D", "e": "EH1", "f": "F", "g": "G",
          "h": "HH", "i": "IH1", "k": "K", "l": "L", "m": "M", "n": "N", "o": "OW1",
          "p": "P", "r": "R", "s": "S", "t": "T", "u": "AH1", "v": "V", "w": "W", "z": "Z"}


def phone_pairs(count, seed=0):
    """Words of 5-9 letters and their phones (14-35 characters, beyond the small
    preset's T of 16); one word in ten has a second pronunciation (its "a" as "AH0")."""
    rng = random.Random(seed)
    letters = sorted(PHONES)
    pairs = []
    while len(pairs) < count:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(5, 9)))
        pairs.append((word, " ".join(PHONES[c] for c in word)))
        if rng.random() < 0.1:
            pairs.append((word, " ".join("AH0" if c == "a" else PHONES[c] for c in word)))
    return pairs[:count]


def sentence_pairs(count, seed=0):
    """Sentences of 3-7 made-up words over a vocabulary of about 1,500 words, and the
    same sentence backwards with each word reversed: a toy translation task."""
    rng = random.Random(seed)
    syllables = ["ka", "to", "mi", "ra", "ne", "su", "lo", "pe", "di", "ba", "fu", "go"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 3)))
                    for _ in range(3000)})
    pairs = []
    for _ in range(count):
        chosen = [rng.choice(words) for _ in range(rng.randint(3, 7))]
        pairs.append((" ".join(chosen), " ".join(w[::-1] for w in reversed(chosen))))
    return pairs


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "kit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def metrics_line(result):
    line = result.stdout.strip().splitlines()[-1]
    return {name: float(value) for name, value in (part.split() for part in line.split(", "))}


# -- the rules, on the shapes of data people bring (no TensorFlow) -------------------

def _texts(pairs):
    return [text for pair in pairs for text in pair]


@pytest.mark.parametrize("name, pairs, kind", [
    ("word -> phones", phone_pairs(3000), "char"),
    # The built-in data: short codes with 2,000 distinct "words" (day and year numbers).
    ("dates", dates.default_splits(0, train_size=3000, validation_size=1, test_size=1)["train"],
     "char"),
    ("spoken numbers", [(f"{w} thousand two hundred thirty four", f"{n}234")
                        for n, w in enumerate(["one", "two", "three", "four"] * 300)], "char"),
    ("transliteration", [(f"moskva{i}", f"москва{i}") for i in range(3000)], "char"),
    ("sentences", sentence_pairs(800), "sentencepiece"),
    ("long character strings", [("ACGT" * 40, "TTGCA" * 30)] * 100, "sentencepiece"),
])
def test_the_tokenizer_rule_on_shapes_of_data(name, pairs, kind):
    sources = TextStats.of(s for s, _ in pairs)
    targets = TextStats.of(t for _, t in pairs)
    chosen, why = choose_tokenizer_kind(sources, targets)
    assert chosen == kind, (name, sources, targets)
    assert why.startswith("auto: sources ")
    assert choose_tokenizer_kind(sources, targets, "char") == (
        "char", "asked for with --tokenizer")


def test_subword_vocabulary_size_follows_the_data():
    texts = _texts(sentence_pairs(800))
    distinct = len({word for text in texts for word in text.split()})
    assert 256 <= subword_vocab_size(texts) == distinct // 4 < MAX_SUBWORD_VOCAB
    assert subword_vocab_size([f"w{i} x{i}" for i in range(50_000)]) == MAX_SUBWORD_VOCAB
    assert subword_vocab_size(["ab"]) == 256
    assert subword_vocab_size(["".join(map(chr, range(0x4E00, 0x4E00 + 9000)))]) == 9064


def test_trained_tokenizers_share_one_vocabulary_and_keep_the_special_ids():
    from kit.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    pairs = sentence_pairs(300)
    tokenizer, record = train_tokenizer(pairs, "sentencepiece")
    assert record["type"] == "sentencepiece" and "shared by sources and targets" in \
        record["message"]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (
        PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    for source, target in pairs[:20]:
        assert tokenizer.decode(tokenizer.encode(source)) == source
        assert tokenizer.decode(tokenizer.encode(target)) == target
    char, record = train_tokenizer(pairs, "char", vocab_size=10)
    assert char.vocab_size == 10 and record["requested_vocab_size"] == 10


def test_the_preset_rule():
    many = 10**9  # target tokens that never limit
    assert choose_preset("auto", "default", 50_000, many)[0] == "small"
    assert choose_preset("auto", "tsv", BASE_PRESET_MIN_PAIRS - 1, many)[0] == "small"
    assert choose_preset("auto", "tfds", BASE_PRESET_MIN_PAIRS, many)[0] == "base"
    # Enough pairs, too few target tokens (one digit each): the tokens hold it back.
    assert choose_preset("auto", "tsv", BASE_PRESET_MIN_PAIRS,
                         BASE_PRESET_MIN_TARGET_TOKENS - 1)[0] == "small"
    assert choose_preset("auto", "tsv", LARGE_PRESET_MIN_PAIRS - 1, many)[0] == "base"
    assert choose_preset("auto", "tsv", LARGE_PRESET_MIN_PAIRS,
                         LARGE_PRESET_MIN_TARGET_TOKENS - 1)[0] == "base"
    name, why = choose_preset("auto", "tsv", LARGE_PRESET_MIN_PAIRS,
                              LARGE_PRESET_MIN_TARGET_TOKENS)
    assert name == "large" and f"{LARGE_PRESET_MIN_PAIRS} training pairs" in why
    assert choose_preset("tiny", "tsv", 10**6, many) == ("tiny", "asked for with --preset")


def test_the_large_preset_builds_with_whole_heads():
    from kit.models import preset

    config = preset("large", source_vocab_size=100, target_vocab_size=100)
    assert (config.model_dim, config.num_heads, config.head_dim) == (256, 4, 64)
    assert config.model_dim > preset("base").model_dim


def test_the_schedule_rule():
    from training.choices import choose_schedule

    # Pre-LN and one epoch of warm-up, within [100, 4000]; the dates keep their recipe.
    assert choose_schedule("tsv", 45_000, 64)[:2] == (True, 704)
    assert choose_schedule("tsv", 500, 64)[:2] == (True, 100)
    assert choose_schedule("tfds", 10_000_000, 64)[:2] == (True, 4000)
    assert choose_schedule("tsv", 45_000, 64, warmup_steps=50)[:2] == (True, 50)
    assert choose_schedule("default", 50_000, 64)[:2] == (False, 1000)
    assert "one epoch of 704 steps" in choose_schedule("tsv", 45_000, 64)[2]


def test_the_built_in_data_keeps_the_presets_lengths():
    from kit.models import preset
    from kit.tokenizer import CharTokenizer
    from training.data import load_pairs
    from training.train import _choose_lengths

    pairs = load_pairs("default", limit=500)
    tokenizer = CharTokenizer.train(_texts(pairs.train))
    lengths = _choose_lengths(TrainOptions(), "default", pairs, tokenizer, preset("small"))
    assert (lengths.source, lengths.target, lengths.chosen) == (48, 16, "the preset's")
    lengths = _choose_lengths(TrainOptions(max_target_length=12), "default", pairs, tokenizer,
                              preset("small"))
    assert (lengths.source, lengths.target, lengths.chosen) == (48, 12, "S the preset's")


def test_when_auto_epochs_stop():
    def state(losses):
        best = min(range(len(losses)), key=losses.__getitem__) + 1 if losses else None
        return {"epochs_done": len(losses), "best_epoch": best}

    auto = _EpochPlan.of(TrainOptions(data="tsv:x", patience=2, max_epochs=6))
    assert auto.stop_reason(state([3.0, 2.0, 2.1])) is None
    assert "not improved for 2 epochs, best at epoch 2" in auto.stop_reason(
        state([3.0, 2.0, 2.1, 2.2]))
    assert "6 epochs" in auto.stop_reason(state([6, 5, 4, 3, 2, 1]))
    assert _EpochPlan.of(TrainOptions(data="default")) == _EpochPlan(8)
    fixed = _EpochPlan.of(TrainOptions(data="tsv:x", epochs=3))
    assert fixed.stop_reason(state([1.0, 2.0])) is None
    assert fixed.stop_reason(state([1.0, 2.0, 3.0])) == "3 epochs done"


def test_alternative_references_are_grouped_by_source():
    pairs = [("a", "1"), ("b", "2"), ("a", "one"), ("c", "3"), ("b", "two")]
    assert _grouped(pairs, 2) == {"a": ["1", "one"], "b": ["2", "two"]}
    assert list(_grouped(pairs, 10)) == ["a", "b", "c"]


# -- bad options: one line, exit 1, before TensorFlow ---------------------------------

_KIT_REPORTING_TF = ("import sys\n"
                     "from kit.__main__ import main\n"
                     "code = main(sys.argv[1:])\n"
                     "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
                     "sys.exit(code)\n")


@pytest.mark.parametrize("args, message", [
    (["--tokenizer", "bpe"], "--tokenizer must be one of auto, char, sentencepiece, got 'bpe'"),
    (["--vocab-size", "3"], "--vocab-size must be an integer from 8"),
    (["--patience", "0"], "--patience must be an integer from 1"),
    (["--max-epochs", "0"], "--max-epochs must be an integer from 1"),
    (["--epochs", "soon"], "--epochs must be an integer from 1 to 10000 (or auto), got 'soon'"),
    (["--preset", "huge"], "--preset must be one of auto, tiny, small, base, large, got 'huge'"),
])
def test_bad_new_options_are_one_line_before_tensorflow(tmp_path, args, message):
    data = write_tsv(tmp_path / "d.tsv", phone_pairs(20))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", _KIT_REPORTING_TF, "train", "--data",
                             f"tsv:{data}", "--out", str(out), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "tensorflow imported: False" in result.stdout
    assert not out.exists()


@pytest.mark.parametrize("pairs, args, message", [
    # 3% of the targets longer than the longest T chosen without asking (512).
    ([(f"w{i}", "x" * (600 if i % 33 == 0 else 5)) for i in range(300)], [],
     "training targets ("),
    (phone_pairs(100), ["--tokenizer", "sentencepiece", "--vocab-size", "8"],
     "--vocab-size 8 is too small for this data"),
], ids=["targets too long", "vocabulary too small"])
def test_data_that_needs_a_decision_is_one_line(tmp_path, pairs, args, message):
    data = write_tsv(tmp_path / "d.tsv", pairs)
    result = run_cli("train", "--data", f"tsv:{data}", "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    if not args:
        assert "pass --max-target-length N to accept cutting them" in lines[0]
    assert not (tmp_path / "run").exists()


# -- the whole flow ------------------------------------------------------------------

def test_a_users_pronunciation_dictionary_with_no_other_flag(tmp_path):
    """600 word -> phones pairs (targets up to 35 characters, some words with two
    pronunciations): train with --data and --out (and a small --max-epochs, for time),
    export float32, evaluate the run and the bundle."""
    pairs = phone_pairs(600)
    data = write_tsv(tmp_path / "phones.tsv", pairs)
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    args = ["train", "--data", f"tsv:{data}", "--out", str(run)]
    # Three epochs of 534 pairs do not get far: the choices are what this test checks
    # (a run that learned nothing ends in an error without --accept-trivial).
    result = run_cli(*args, "--max-epochs", "3", "--accept-trivial")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "tokenizer char (auto: sources " in out
    assert "preset small (auto: " in out
    lengths = json.loads((run / rd.RUN_JSON).read_text())["lengths"]
    assert f"lengths S={lengths['source']}, T={lengths['target']} (data): " in out, out
    # Our line per epoch, and no Keras header ("Epoch 1/1") in a log.
    assert "epoch 1/3: " in out and "epoch 3/3: " in out and "Epoch " not in out, out
    assert "until val_loss has not improved for 3 epochs" in out
    assert f"final evaluation: beam search of {DEFAULT_BEAM_SIZE} beams" in out
    assert "metrics: val_loss " in out

    info = json.loads((run / rd.RUN_JSON).read_text())
    # T covers the targets (at most one in a thousand may be cut), far beyond the
    # small preset's 16, and S the words.
    splits = load_pairs(f"tsv:{data}")
    longest = sorted(len(t) for _, t in splits.train)
    assert info["lengths"]["target"] - 1 >= longest[-2] > 16
    assert info["lengths"]["target_cut"] <= 1 and info["lengths"]["source_cut"] == 0
    assert info["config"]["max_target_length"] == info["lengths"]["target"]
    assert info["tokenizer"]["type"] == "char" and info["preset"]["name"] == "small"
    assert info["epochs"] == "auto" and info["stopping"]["patience"] == 3
    for split in ("val", "test"):
        for name in ("exact_match", "cer", "wer", "bleu", "chrf", "decoded"):
            assert f"{split}_{name}" in info["metrics"], (split, name)
    # Sources with two pronunciations are decoded once.
    assert info["metrics"]["val_decoded"] == len({s for s, _ in splits.validation}) < len(
        splits.validation)

    # The same command again: nothing to do. A larger --max-epochs resumes the run.
    again = run_cli(*args, "--max-epochs", "3", "--accept-trivial")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]
    longer = run_cli(*args, "--max-epochs", "4", "--accept-trivial")
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert f"resuming {run} after epoch 3" in longer.stdout and "epoch 4/4: " in longer.stdout
    assert json.loads((run / rd.RUN_JSON).read_text())["epochs_done"] == 4

    exported = run_cli("export", str(run), "--recipe", "float32", "--out", str(bundle),
                       "--samples", "16")
    assert exported.returncode == 0, exported.stderr[-2000:]
    on_bundle = run_cli("evaluate", str(bundle), "--data", f"tsv:{data}", "--limit", "40")
    on_run = run_cli("evaluate", str(run), "--data", f"tsv:{data}", "--limit", "40")
    assert on_bundle.returncode == 0 and on_run.returncode == 0, on_bundle.stderr + on_run.stderr
    bundle_metrics, run_metrics = metrics_line(on_bundle), metrics_line(on_run)
    assert set(bundle_metrics) == {"exact_match", "cer", "wer", "bleu", "chrf", "sources"}
    assert bundle_metrics == run_metrics


def test_a_sentencepiece_run_decodes_the_same_through_its_bundle(tmp_path):
    import keras

    from export.cli import export_run
    from kit.runtime import Bundle, BundleError
    from kit.subword import MODEL_FILE, SentencePieceTokenizer
    from kit.tokenizer import load_tokenizer
    from training.evaluate import greedy_translate
    from training.train import train

    data = write_tsv(tmp_path / "sentences.tsv", sentence_pairs(500))
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    info = train(TrainOptions(data=f"tsv:{data}", out=str(run), tokenizer="sentencepiece",
                              preset="tiny", epochs=3, accept_trivial=True,
                              batch_size=32, learning_rate=3e-3, eval_samples=20))
    assert info["tokenizer"]["type"] == "sentencepiece"
    assert (run / MODEL_FILE).is_file()
    report = export_run(run, "float32", bundle, samples=8, progress=lambda message: None)
    assert report["recipes"][0]["token_exact"] == 100.0

    spec = json.loads((bundle / "bundle.json").read_text())
    assert spec["tokenizer"] == {"type": "sentencepiece",
                                 "files": ["tokenizer.json", MODEL_FILE]}
    assert set(spec["files"]) == {"model.tflite", "tokenizer.json", MODEL_FILE}
    loaded = Bundle.load(bundle)
    assert isinstance(loaded.tokenizer, SentencePieceTokenizer)

    # The same ids on both sides, for seen text and for characters never seen.
    trained = load_tokenizer(run / rd.TOKENIZER_FILE)
    texts = [s for s, _ in sentence_pairs(10, seed=5)] + ["unseen: é ü ß 語 ka", "ÿ"]
    assert [loaded.tokenizer.encode(t) for t in texts] == [trained.encode(t) for t in texts]
    model = keras.saving.load_model(run / rd.KERAS_MODEL_FILE, compile=False)
    assert [loaded.translate(t) for t in texts] == greedy_translate(model, trained, texts)

    # The model file is checked against bundle.json before it is parsed.
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    other = SentencePieceTokenizer.train(_texts(sentence_pairs(100, seed=9)), vocab_size=100)
    other.save(tmp_path / "other.json")
    shutil.copyfile(tmp_path / MODEL_FILE, damaged / MODEL_FILE)
    with pytest.raises(BundleError, match="tokenizer.model is not the file"):
        Bundle.load(damaged)
