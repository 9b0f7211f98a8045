"""kit/tokenizers: the interface every tokenizer implements, `load_tokenizer`, and the
character tokenizer (kit/tokenizers/char.py) that training and the phone share."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SOURCE_TOKENIZER_FILE,
    UNK_ID,
    UNK_TEXT,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    WordTokenizer,
    load_tokenizer,
    source_ids,
)

TOKENIZER_FILE = SOURCE_TOKENIZER_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]

TEXTS = [
    "Sun 29 Nov 2026",
    "the 29th of November 2026 -> 2026-11-29",
    "Olá, como está? Não sei.",
    "Grüße aus Köln — «ça va» ½",
    "日本語のテキスト",
    "emoji 🙂 and a tab\there",
    "e\u0301 (e + combining acute) vs \u00e9",
    "",
]


@pytest.fixture
def tok():
    return CharTokenizer.train(TEXTS)


def test_special_ids_are_fixed(tok):
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.vocabulary[:4] == ("<pad>", "<unk>", "<s>", "</s>")
    assert tok.vocab_size == 4 + len(set("".join(TEXTS)))


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    # One id per code point: the emoji and the combining accent are one token each.
    assert len(ids) == len(text)
    assert all(isinstance(i, int) and i >= 4 for i in ids)
    assert tok.decode(ids) == text


def test_encode_adds_no_bos_or_eos(tok):
    ids = tok.encode("29")
    assert BOS_ID not in ids and EOS_ID not in ids


def test_unknown_characters_become_unk(tok):
    ids = tok.encode("29 Ж Nov ∑")
    assert ids.count(UNK_ID) == 2
    assert ids[3] == UNK_ID
    assert tok.decode(ids) == f"29 {UNK_TEXT} Nov {UNK_TEXT}"


def test_unknown_characters_are_counted_without_changing_the_ids(tok):
    text = "29 Ж Nov ∑Ж \x00"
    ids = tok.encode(text)
    assert tok.unknown_count(text) == ids.count(UNK_ID) == 4
    assert tok.unknown_characters(text) == ["Ж", "∑", "\x00"]
    assert tok.encode(text) == ids
    assert tok.unknown_count("") == 0 and tok.unknown_characters("Nov 29") == []
    with pytest.raises(TypeError, match="unknown_count expects a str"):
        tok.unknown_count(b"abc")


def test_load_tokenizer_parses_given_bytes(tok, tmp_path):
    """The runtime passes the bytes it checksummed; the path only names them."""
    path = tmp_path / TOKENIZER_FILE
    tok.save(path)
    content = path.read_bytes()
    path.unlink()
    assert load_tokenizer(path, content=content) == tok
    with pytest.raises(TokenizerError, match=f"{path}.*not valid JSON"):
        load_tokenizer(path, content=content[:-5])


@pytest.mark.parametrize("content", [b"[" * 100_000, b'{"type": 1' + b"0" * 5000 + b"}"],
                         ids=["deep nesting", "5000-digit integer"])
def test_json_that_python_refuses_is_one_line(tmp_path, content):
    path = _write(tmp_path / TOKENIZER_FILE, content)
    with pytest.raises(TokenizerError, match="cannot be read as a tokenizer file") as caught:
        load_tokenizer(path)
    assert "\n" not in str(caught.value)


def test_specials_spelled_out_in_text_are_characters(tok):
    # "<s>" typed by a user is three ordinary characters, never the BOS id.
    ids = CharTokenizer.train(["<s></s>"]).encode("<s>")
    assert len(ids) == 3 and BOS_ID not in ids


def test_decode_stops_at_eos_and_skips_pad_and_bos(tok):
    body = tok.encode("Nov 29")
    assert tok.decode([BOS_ID] + body + [EOS_ID] + tok.encode("junk") + [PAD_ID]) == "Nov 29"
    assert tok.decode([BOS_ID, PAD_ID] + body[:3] + [PAD_ID] + body[3:]) == "Nov 29"
    assert tok.decode([EOS_ID] + body) == ""


def test_decode_accepts_integer_like_values(tok):
    class NumpyLikeInt:
        def __init__(self, value):
            self.value = value

        def __index__(self):
            return self.value

    ids = tok.encode("2026")
    assert tok.decode([NumpyLikeInt(i) for i in ids]) == "2026"


@pytest.mark.parametrize("bad_id", [-1, 10_000])
def test_decode_rejects_ids_outside_the_vocabulary(tok, bad_id):
    with pytest.raises(ValueError, match=f"token id {bad_id} is outside the vocabulary"):
        tok.decode([4, bad_id])


def test_decode_stops_at_the_end_token(tok):
    assert tok.decode(tok.encode("29 Nov") + [EOS_ID, 5]) == "29 Nov"


def test_vocabulary_order_is_count_then_character():
    tok = CharTokenizer.train(["bbbccca", "a", "d"])
    # counts: b 3, c 3, a 2, d 1; b before c on a tie.
    assert tok.vocabulary[4:] == ("b", "c", "a", "d")


def test_vocabulary_is_deterministic_whatever_the_input_order():
    texts = TEXTS * 3 + ["zzz", "yyy"]
    first = CharTokenizer.train(texts)
    again = CharTokenizer.train(list(reversed(texts)))
    assert first == again and first.vocabulary == again.vocabulary
    # Same result in a fresh interpreter with a different hash seed: sets and dicts
    # of characters must not leak their iteration order into the ids.
    code = (
        "import json, sys; from kit.tokenizers import CharTokenizer; "
        "texts = json.loads(sys.stdin.read()); "
        "print(json.dumps(CharTokenizer.train(texts).vocabulary))"
    )
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout
        assert tuple(json.loads(out)) == first.vocabulary


def test_min_count_and_max_vocab():
    texts = ["aaaa", "bbb", "cc", "d"]
    assert CharTokenizer.train(texts, min_count=2).vocabulary[4:] == ("a", "b", "c")
    small = CharTokenizer.train(texts, max_vocab=6)
    assert small.vocab_size == 6 and small.vocabulary[4:] == ("a", "b")
    assert small.encode("abcd") == [4, 5, UNK_ID, UNK_ID]
    assert CharTokenizer.train(texts, max_vocab=4).vocab_size == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_count": 0}, "min_count=0"),
        ({"max_vocab": 3}, "max_vocab=3"),
        ({"max_vocab": 10.0}, "max_vocab=10.0"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharTokenizer.train(["abc"], **kwargs)


def test_train_rejects_non_strings():
    with pytest.raises(TypeError, match="b'abc'"):
        CharTokenizer.train([b"abc"])


@pytest.mark.parametrize(
    "vocabulary, message",
    [
        (["a", "b"], "must start with"),
        (["<pad>", "<unk>", "<s>", "</s>", "ab"], "one character"),
        (["<pad>", "<unk>", "<s>", "</s>", "a", "a"], "more than once"),
    ],
)
def test_constructor_validates_the_vocabulary(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        CharTokenizer(vocabulary)


def test_save_load_identical(tok, tmp_path):
    path = tmp_path / TOKENIZER_FILE
    tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded == tok and loaded.vocabulary == tok.vocabulary
    assert load_tokenizer(str(path)) == tok
    for text in TEXTS + ["unseen Ж"]:
        assert loaded.encode(text) == tok.encode(text)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["type"] == "char" and saved["format_version"] == 1
    assert saved["vocabulary"] == list(tok.vocabulary)
    assert saved["vocabulary"].index("🙂") == tok.encode("🙂")[0]


def test_save_is_atomic_and_leaves_no_temp_files(tok, tmp_path):
    path = tmp_path / TOKENIZER_FILE
    CharTokenizer.train(["old"]).save(path)
    tok.save(path)
    assert CharTokenizer.load(path) == tok
    assert os.listdir(tmp_path) == [TOKENIZER_FILE]


def test_failed_save_keeps_the_old_file(tok, tmp_path, monkeypatch):
    path = tmp_path / TOKENIZER_FILE
    old = CharTokenizer.train(["old"])
    old.save(path)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        tok.save(path)
    assert CharTokenizer.load(path) == old
    assert os.listdir(tmp_path) == [TOKENIZER_FILE]


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is not valid JSON"),
        ('{"type": "char", "format_version": 1, "vocabulary": ["<pad>"', "is not valid JSON"),
        (b"\xff\xfe{}", "is not UTF-8"),
        ("[1, 2]", "holds a JSON list"),
        ('{"type": "bpe", "format_version": 1, "vocabulary": []}', "unknown tokenizer type 'bpe'"),
        ('{"format_version": 1, "vocabulary": []}', "unknown tokenizer type None"),
        ('{"type": "char", "format_version": 2, "vocabulary": []}', "format_version 2"),
        (
            '{"type": "char", "format_version": 1, "vocabulary": "abc"}',
            "'vocabulary' must be a list",
        ),
        ('{"type": "char", "format_version": 1, "vocabulary": ["a"]}', "must start with"),
        (
            '{"type": "char", "format_version": 1, '
            '"vocabulary": ["<pad>", "<unk>", "<s>", "</s>", 7]}',
            "one character",
        ),
    ],
)
def test_load_tokenizer_errors_are_one_clear_line(tmp_path, content, message):
    path = _write(tmp_path / TOKENIZER_FILE, content)
    with pytest.raises(TokenizerError, match=message) as caught:
        load_tokenizer(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_char_load_rejects_other_types(tmp_path):
    path = _write(tmp_path / "t.json", '{"type": "bpe", "format_version": 1, "vocabulary": []}')
    with pytest.raises(TokenizerError, match="not a char tokenizer: type is 'bpe'"):
        CharTokenizer.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer file not found: .*nope.json"):
        load_tokenizer(tmp_path / "nope.json")
    with pytest.raises(TokenizerError, match="is a directory"):
        CharTokenizer.load(tmp_path)


def _modules_after(code):
    """Names among tensorflow/keras/numpy that a fresh interpreter has after `code`."""
    probe = (
        f"{code}\nimport sys\n"
        "print(','.join(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    return result.stdout.strip()


def test_importing_kit_tokenizers_imports_neither_tensorflow_nor_keras():
    loaded = _modules_after("import kit.tokenizers")
    assert "tensorflow" not in loaded and "keras" not in loaded


def test_char_and_word_tokenizers_need_only_the_standard_library(tmp_path):
    # What a device without numpy runs: train, save, load and decode both.
    path = tmp_path / "t.json"
    code = (
        "from kit.tokenizers import CharTokenizer, WordTokenizer, load_tokenizer, UNK_TEXT\n"
        "t = CharTokenizer.train(['abc'])\n"
        "assert t.decode(t.encode('abcz')) == 'abc' + UNK_TEXT\n"
        "w = WordTokenizer.train(['K AE1 T'])\n"
        f"w.save({str(path)!r})\n"
        f"assert load_tokenizer({str(path)!r}).decode(w.encode('T K X')) == 'T K ' + UNK_TEXT\n"
    )
    assert _modules_after(code) == ""


def test_source_ids_cut_and_pad_to_the_source_length():
    tok = CharTokenizer.train(["2020-01-02"])
    assert source_ids(tok, "2020-01-02", 4) == tok.encode("2020")
    assert source_ids(tok, "20", 4) == tok.encode("20") + [0, 0]
    words = WordTokenizer.train(["K AE1 T"])
    assert source_ids(words, "K AE1 T", 2) == words.encode("K AE1")
    assert source_ids(words, "T", 3) == words.encode("T") + [0, 0]


@pytest.mark.parametrize("make", [
    lambda: CharTokenizer.train(["Sun 29 Nov 2026", "2026-11-29"]),
    lambda: WordTokenizer.train(["K AE1 T", "D AO1 G", "K AO1 T"]),
], ids=["char", "word"])
def test_the_interface_every_tokenizer_implements(make, tmp_path):
    """What training, export and the device ask of any tokenizer."""
    tok = make()
    assert isinstance(tok, Tokenizer)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.files("target_tokenizer.json") == ["target_tokenizer.json"]
    tok.save(tmp_path / "target_tokenizer.json")
    loaded = load_tokenizer(tmp_path / "target_tokenizer.json")
    assert type(loaded) is type(tok) and loaded == tok
    assert loaded.to_dict() == tok.to_dict() and tok.to_dict()["type"] == tok.TYPE
    assert tok.decode([]) == "" and tok.unknown_count("") == 0
    assert tok.vocab_size == len(tok.to_dict()["vocabulary"])
    with pytest.raises(TypeError, match="encode expects a str"):
        tok.encode(b"bytes")
