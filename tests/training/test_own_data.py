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

from kit.runtime.flat_files import read_flat_metadata, read_vocabulary_text
from training import dates
from training import run_dir as rd
from training.choices import (
    BASE_PRESET_MIN_PAIRS,
    BASE_PRESET_MIN_TARGET_TOKENS,
    LARGE_PRESET_MIN_PAIRS,
    LARGE_PRESET_MIN_TARGET_TOKENS,
    MAX_SUBWORD_VOCAB,
    SUBWORD_MIN_CHARS_PER_TEXT,
    TextStats,
    choose_preset,
    choose_tokenizer_kind,
    subword_vocab_size,
    train_tokenizers,
)
from training.data import load_pairs
from training.epochs import EpochPlan
from training.options import DEFAULT_BEAM_SIZE, TrainOptions
from training.train import _grouped

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


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _below_1000(n):
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return words


def spoken(n):
    """English words for 0 <= n < 1,000,000: "forty-two thousand one hundred seven"."""
    words = (_below_1000(n // 1000) + ["thousand"]) if n >= 1000 else []
    return " ".join(words + (_below_1000(n % 1000) if n % 1000 or not words else []))


def spoken_numbers(count, languages=6, seed=0):
    """Spoken numbers in `languages` made-up languages to digits, the shape of the
    failure that made each side choose alone: half the languages write a number below
    a thousand as one compound word (German "zweihundertvierunddreissig"), which gives
    the sources thousands of distinct words; the targets are digit strings."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        n, language = rng.randrange(1_000_000), rng.randrange(languages)
        words = spoken(n).split()
        if language % 2:  # compounds below a thousand, then a spelling of its own
            words = spoken(n).replace(" hundred ", "hundred").replace("-", "und").split()
        pairs.append((" ".join(f"{w}{'aeiou'[language % 5] * (language // 2)}"
                               for w in words), str(n)))
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


# The built-in data: short codes with 2,000 distinct "words" (day and year numbers).
DATES = dates.default_splits(0, train_size=3000, validation_size=1, test_size=1)["train"]


@pytest.mark.parametrize("name, pairs, source, target", [
    ("word -> phones", phone_pairs(3000), "char", "word"),
    ("dates", DATES, "char", "char"),
    # 101 number words: with 5,000 numbers each is seen often, a closed set of words;
    # with 400 some ("forty-two") are seen under 5 times: rare words, so characters.
    ("spoken numbers, one language", [(spoken(n), str(n)) for n in range(1, 300_000, 61)],
     "word", "char"),
    ("spoken numbers, 400", [(spoken(n), str(n)) for n in range(1, 3000, 7)], "char", "char"),
    ("spoken numbers, six languages", spoken_numbers(3000), "sentencepiece", "char"),
    ("digits -> spoken", [(str(n), spoken(n)) for n in range(1, 300_000, 61)], "char", "word"),
    ("transliteration", [(f"moskva{i}", f"москва{i}") for i in range(3000)], "char", "char"),
    ("sentences", sentence_pairs(800), "sentencepiece", "sentencepiece"),
    ("sentences -> tags", [(s, " ".join("NOUN" if len(w) > 4 else "VERB" for w in s.split()))
                           for s, _ in sentence_pairs(800)], "sentencepiece", "word"),
    ("long character strings", [("ACGT" * 40, "TTGCA" * 30)] * 100,
     "sentencepiece", "sentencepiece"),
])
def test_each_side_is_chosen_from_its_own_texts(name, pairs, source, target):
    sources = TextStats.of(s for s, _ in pairs)
    targets = TextStats.of(t for _, t in pairs)
    assert (sources.kind(), targets.kind()) == (source, target), (name, sources, targets)
    kind, why = choose_tokenizer_kind(sources)
    assert kind == source and why.startswith("auto: median ")
    assert choose_tokenizer_kind(sources, "char", "--source-tokenizer") == (
        "char", "asked for with --source-tokenizer")


def test_symbols_with_a_long_tail_of_rare_ones_stay_characters():
    """Words seen once or twice are those a test set holds and a word vocabulary
    lacks (unknown tokens); spelled as characters they are not. A few of them among
    20,000 occurrences do not make a phone set open."""
    phones = phone_pairs(3000)
    few = phones + [(f"q{i}", "Q X1 Z") for i in range(3)]
    assert TextStats.of(t for _, t in few).kind() == "word"
    tail = phones + [(f"q{i}", f"Q{i // 2} X{i // 2}") for i in range(60)]
    assert TextStats.of(t for _, t in tail).rare_word_share > 0.001
    assert TextStats.of(t for _, t in tail).kind() == "char"
    # Doubled spaces do not survive a word tokenizer's round trip.
    assert TextStats.of(t.replace(" ", "  ") for _, t in phone_pairs(300)).kind() == "char"


@pytest.mark.parametrize("name, pairs", [("dates", DATES), ("phones", phone_pairs(3000)),
                                         ("numbers", spoken_numbers(3000))])
def test_outlier_lines_do_not_switch_a_tokenizer(name, pairs):
    """3.5% of 5,000-character lines on both sides: the mean length passes 100
    characters (the old rule switched the dates to SentencePiece), the median does
    not move."""
    rng = random.Random(1)
    junk = ["".join(rng.choice("abcdefghij 0123456789") for _ in range(5000))
            for _ in range(int(len(pairs) * 0.035))]
    noisy = pairs + [(line, line) for line in junk]
    for side in (0, 1):
        clean = TextStats.of(pair[side] for pair in pairs)
        dirty = TextStats.of(pair[side] for pair in noisy)
        assert dirty.kind() == clean.kind(), (name, side, clean, dirty)
        mean = sum(len(pair[side]) for pair in noisy) / len(noisy)
        assert mean > SUBWORD_MIN_CHARS_PER_TEXT


def test_subword_vocabulary_size_follows_the_data():
    texts = _texts(sentence_pairs(800))
    distinct = len({word for text in texts for word in text.split()})
    assert 256 <= subword_vocab_size(texts) == distinct // 4 < MAX_SUBWORD_VOCAB
    assert subword_vocab_size([f"w{i} x{i}" for i in range(50_000)]) == MAX_SUBWORD_VOCAB
    assert subword_vocab_size(["ab"]) == 256
    assert subword_vocab_size(["".join(map(chr, range(0x4E00, 0x4E00 + 9000)))]) == 9064


def test_each_side_has_its_own_vocabulary_and_the_special_ids():
    from kit.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    pairs = spoken_numbers(2000)
    tokenizers, record = train_tokenizers(pairs)
    source, target = tokenizers
    assert (record["source"]["type"], record["target"]["type"]) == ("sentencepiece", "char")
    assert record["source"]["message"].startswith("source tokenizer sentencepiece, ")
    assert record["target"]["message"].startswith("target tokenizer char, 14 tokens")
    # Digits are characters: no opaque piece holds a whole number.
    assert target.vocab_size == 4 + 10 and source.vocab_size > 256
    for tokenizer in tokenizers:
        assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (
            PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    for s, t in pairs[:20]:
        assert source.decode(source.encode(s)) == s
        assert target.encode(t) == [target.vocabulary.index(c) for c in t]
    # The source's size comes from the source's distinct words only.
    assert record["source"]["requested_vocab_size"] is None
    assert "a quarter of the distinct words" in record["source"]["message"]
    both, record = train_tokenizers(pairs, "char", "char", vocab_size=10)
    assert both.source.vocab_size == both.target.vocab_size == 10
    assert record["source"]["reason"] == "asked for with --source-tokenizer"
    words, _ = train_tokenizers(phone_pairs(300), target="auto")
    assert type(words.target).__name__ == "WordTokenizer"


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
    from kit.tokenizers import CharTokenizer, TokenizerPair
    from training.data import load_pairs
    from training.pipeline import tokenize
    from training.train import _choose_lengths

    pairs = load_pairs("default", limit=500)
    tokenizer = TokenizerPair(CharTokenizer.train(s for s, _ in pairs.train),
                              CharTokenizer.train(t for _, t in pairs.train))
    ids = tokenize(pairs.train, tokenizer)
    lengths = _choose_lengths(TrainOptions(), "default", ids, preset("small"))
    assert (lengths.source, lengths.target, lengths.chosen) == (48, 16, "the preset's")
    lengths = _choose_lengths(TrainOptions(max_target_length=12), "default", ids,
                              preset("small"))
    assert (lengths.source, lengths.target, lengths.chosen) == (48, 12, "S the preset's")


def test_when_auto_epochs_stop():
    def state(losses):
        best = min(range(len(losses)), key=losses.__getitem__) + 1 if losses else None
        return {"epochs_done": len(losses), "best_epoch": best}

    auto = EpochPlan.of(TrainOptions(data="tsv:x", patience=2, max_epochs=6))
    assert auto.stop_reason(state([3.0, 2.0, 2.1])) is None
    assert "not improved for 2 epochs, best at epoch 2" in auto.stop_reason(
        state([3.0, 2.0, 2.1, 2.2]))
    assert "6 epochs" in auto.stop_reason(state([6, 5, 4, 3, 2, 1]))
    assert EpochPlan.of(TrainOptions(data="default")) == EpochPlan(8)
    fixed = EpochPlan.of(TrainOptions(data="tsv:x", epochs=3))
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
    (["--tokenizer", "bpe"], "--source-tokenizer must be one of auto, char, word, "
                             "sentencepiece, got 'bpe'"),
    (["--target-tokenizer", "chars"], "--target-tokenizer must be one of auto, char, word, "
                                      "sentencepiece, got 'chars'"),
    (["--vocab-size", "3"], "--vocab-size must be an integer from 8"),
    (["--patience", "0"], "--patience must be an integer from 1"),
    (["--max-epochs", "0"], "--max-epochs must be an integer from 1"),
    # Not a number at all: a command line that cannot be read (kit/commands.py: exit 2).
    (["--epochs", "soon"], "argument --epochs: expected an integer or auto, got 'soon'"),
    (["--preset", "huge"], "--preset must be one of auto, tiny, small, base, large, got 'huge'"),
])
def test_bad_new_options_are_one_line_before_tensorflow(tmp_path, args, message):
    data = write_tsv(tmp_path / "d.tsv", phone_pairs(20))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", _KIT_REPORTING_TF, "train", "--data",
                             f"tsv:{data}", "--out", str(out), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=ENV)
    unreadable = "expected" in message  # argparse's exit: nothing after main() runs
    assert result.returncode == (2 if unreadable else 1), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert unreadable or "tensorflow imported: False" in result.stdout
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

@pytest.mark.slow
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
    # Each side alone: letters in, phones (a closed set of symbols) out.
    assert "source tokenizer char, 26 tokens (every character seen; auto: median " in out
    assert "target tokenizer word, 26 tokens (every word seen; auto: median " in out
    assert "preset small (auto: " in out
    lengths = json.loads((run / rd.RUN_JSON).read_text())["lengths"]
    assert f"lengths S={lengths['source']}, T={lengths['target']} (data): " in out, out
    # Our line per epoch, and no Keras header ("Epoch 1/1") in a log.
    assert "epoch 1/3: " in out and "epoch 3/3: " in out and "Epoch " not in out, out
    assert "until val_loss has not improved for 3 epochs" in out
    assert f"final evaluation: beam search of {DEFAULT_BEAM_SIZE} beams" in out
    assert "metrics: val_loss " in out

    info = json.loads((run / rd.RUN_JSON).read_text())
    # T covers the targets in phones (at most one in a thousand may be cut), and S the
    # words' letters.
    splits = load_pairs(f"tsv:{data}")
    longest = sorted(len(t.split()) for _, t in splits.train)
    assert info["lengths"]["target"] - 1 >= longest[-2] >= 9
    assert info["lengths"]["target_cut"] <= 1 and info["lengths"]["source_cut"] == 0
    assert info["config"]["max_target_length"] == info["lengths"]["target"]
    assert info["tokenizer"]["source"]["type"] == "char" and info["preset"]["name"] == "small"
    assert info["tokenizer"]["target"]["type"] == "word"
    assert info["config"]["target_vocab_size"] == info["tokenizer"]["target"]["vocab_size"]
    assert info["config"]["source_vocab_size"] == info["tokenizer"]["source"]["vocab_size"]
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
                       "--samples", "16", "--batch-sizes", "1")  # the tokenizers, not the pairs
    assert exported.returncode == 0, exported.stderr[-2000:]
    # Letters encoded by one tokenizer, phones decoded by the other: token-exact.
    assert json.loads((bundle / "report.json").read_text())["token_exact"] == 100.0
    spec = json.loads((bundle / "bundle.json").read_text())
    assert spec["tokenizer"] == {"source": {"type": "char", "files": ["source_tokenizer.json"]},
                                 "target": {"type": "word", "files": ["target_tokenizer.json"]}}
    # For an app without a JSON parser: bundle.txt, and the phones one a line.
    flat = read_flat_metadata((bundle / "bundle.txt").read_bytes().decode("utf-8"))
    assert {key: flat[key] for key in flat if "_tokenizer" in key and "." not in key} == {
        "source_tokenizer": "char", "source_tokenizer_size": str(info["tokenizer"]["source"][
            "vocab_size"]), "target_tokenizer": "word",
        "target_tokenizer_size": str(info["tokenizer"]["target"]["vocab_size"])}
    assert flat["target_vocabulary"] == spec["flat"]["vocabulary"]["target"] == "target_vocab.txt"
    phones = read_vocabulary_text((bundle / "target_vocab.txt").read_bytes().decode("utf-8"))
    assert phones == list(rd.load_tokenizers(run).target.vocabulary)
    assert set(phones[4:]) <= set(PHONES.values()) | {"AH0"}
    decoded = run_cli("decode", str(bundle), splits.test[0][0])
    assert decoded.returncode == 0 and decoded.stdout.strip(), decoded.stderr
    assert set(decoded.stdout.split()) <= set(PHONES.values()) | {"AH0"}
    on_bundle = run_cli("evaluate", str(bundle), "--data", f"tsv:{data}", "--limit", "40")
    on_run = run_cli("evaluate", str(run), "--data", f"tsv:{data}", "--limit", "40")
    assert on_bundle.returncode == 0 and on_run.returncode == 0, on_bundle.stderr + on_run.stderr
    bundle_metrics, run_metrics = metrics_line(on_bundle), metrics_line(on_run)
    assert set(bundle_metrics) == {"exact_match", "cer", "wer", "bleu", "chrf", "sources"}
    assert bundle_metrics == run_metrics


@pytest.fixture(scope="module")
def sentencepiece_run(tmp_path_factory):
    """(run.json's info, run dir, its float32 bundle): SentencePiece on both sides."""
    from export.cli import export_run
    from training.train import train

    tmp_path = tmp_path_factory.mktemp("sentencepiece")
    data = write_tsv(tmp_path / "sentences.tsv", sentence_pairs(500))
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    info = train(TrainOptions(data=f"tsv:{data}", out=str(run),
                              source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                              preset="tiny", epochs=3, accept_trivial=True,
                              batch_size=32, learning_rate=3e-3, eval_samples=20))
    report = export_run(run, "float32", bundle, samples=8, progress=lambda message: None,
                        batch_sizes=(1,))
    assert report["recipes"][0]["token_exact"] == 100.0
    return info, run, bundle


@pytest.mark.slow
def test_a_sentencepiece_run_decodes_the_same_through_its_bundle(sentencepiece_run, tmp_path):
    import keras

    from kit.runtime import Bundle, BundleError
    from kit.tokenizers.sentencepiece import SentencePieceTokenizer
    from training.evaluate import greedy_translate

    info, run, bundle = sentencepiece_run
    assert info["tokenizer"]["source"]["type"] == info["tokenizer"]["target"]["type"] == \
        "sentencepiece"
    assert (run / "source_tokenizer.model").is_file()
    assert (run / "target_tokenizer.model").is_file()

    spec = json.loads((bundle / "bundle.json").read_text())
    assert spec["tokenizer"] == {
        side: {"type": "sentencepiece",
               "files": [f"{side}_tokenizer.json", f"{side}_tokenizer.model"]}
        for side in ("source", "target")}
    assert set(spec["files"]) == {"model.tflite", "source_tokenizer.json",
                                  "source_tokenizer.model", "target_tokenizer.json",
                                  "target_tokenizer.model", "bundle.txt"}
    # No vocabulary files: an app reads each side's .model, which bundle.txt names.
    assert spec["flat"] == {"metadata": "bundle.txt",
                            "vocabulary": {"source": None, "target": None}}
    flat = read_flat_metadata((bundle / "bundle.txt").read_bytes().decode("utf-8"))
    assert {key: flat[key] for key in flat if "_tokenizer" in key and "." not in key} == {
        f"{side}_{key}": value for side in ("source", "target") for key, value in (
            ("tokenizer", "sentencepiece"),
            ("tokenizer_size", str(spec["vocab_size"][f"{side}_tokenizer"])),
            ("tokenizer_model", f"{side}_tokenizer.model"))}
    assert not any("vocabulary" in key for key in flat)
    assert not list(bundle.glob("*_vocab.txt"))
    loaded = Bundle.load(bundle)
    assert isinstance(loaded.source_tokenizer, SentencePieceTokenizer)
    assert loaded.source_tokenizer != loaded.target_tokenizer  # each side its own

    # The same ids on both sides, for seen text and for characters never seen.
    trained = rd.load_tokenizers(run)
    texts = [s for s, _ in sentence_pairs(10, seed=5)] + ["unseen: é ü ß 語 ka", "ÿ"]
    assert [loaded.source_tokenizer.encode(t) for t in texts] == [
        trained.source.encode(t) for t in texts]
    model = keras.saving.load_model(run / rd.KERAS_MODEL_FILE, compile=False)
    assert [loaded.translate(t) for t in texts] == greedy_translate(model, trained, texts)

    # The model file is checked against bundle.json before it is parsed.
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    other = SentencePieceTokenizer.train(_texts(sentence_pairs(100, seed=9)), vocab_size=100)
    other.save(tmp_path / "other.json")
    shutil.copyfile(tmp_path / "other.model", damaged / "target_tokenizer.model")
    with pytest.raises(BundleError, match="target_tokenizer.model is not the file"):
        Bundle.load(damaged)


@pytest.mark.slow
def test_the_c_loop_reads_the_sentencepiece_bundle(sentencepiece_run, tmp_path_factory):
    """The C decode loop (examples/c), built with the SentencePiece C++ library, gives
    the Python runtime's ids and texts: seen sentences, unseen characters, blank input,
    a source longer than S. (CI's device tests do the same on a run trained on real
    translations, with the AddressSanitizer build too.)"""
    from tests.device.test_c_loop import c_decoder_programs, check_like_python

    programs = c_decoder_programs(tmp_path_factory)
    texts = [s for s, _ in sentence_pairs(40, seed=5)] + [
        "unseen: \u00e9 \u00fc \u00df \u8a9e ka", "\u00ff", "", "  ", "kato  mira\tsu",
        " ".join(s for s, _ in sentence_pairs(6, seed=6))]
    assert check_like_python(programs, sentencepiece_run[2], texts) == len(texts)


def test_tokenizer_flags_set_each_side_and_both():
    from training.cli import build_parser, options_from_args
    from training.run_dir import recorded_identity

    def options(*args):
        return options_from_args(build_parser().parse_args(["--out", "x", *args]))

    assert (options().source_tokenizer, options().target_tokenizer) == ("auto", "auto")
    both = options("--tokenizer", "char")
    assert (both.source_tokenizer, both.target_tokenizer) == ("char", "char")
    one = options("--tokenizer", "char", "--target-tokenizer", "word")
    assert (one.source_tokenizer, one.target_tokenizer) == ("char", "word")
    assert {"source_tokenizer", "target_tokenizer"} <= set(one.identity())
    # A run made with one --tokenizer for both sides keeps its identity.
    old = {key: value for key, value in both.identity().items()
           if key not in ("source_tokenizer", "target_tokenizer")}
    assert recorded_identity({"identity": {**old, "tokenizer": "char"}}) == both.identity()
    assert recorded_identity({"identity": old}) == options().identity()


def test_the_preset_choices_and_the_config_load_no_keras():
    code = ("import sys\n"
            "from training.choices import PRESET_CHOICES\n"
            "from kit.models import TransformerConfig, preset\n"
            "assert PRESET_CHOICES == ('auto', 'tiny', 'small', 'base', 'large')\n"
            "preset('base')\n"
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
