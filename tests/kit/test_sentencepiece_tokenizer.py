"""kit/tokenizers/sentencepiece.py: a SentencePiece tokenizer with the kit's special
ids, the same ids in training and on the device, and a model file named after its JSON
and bound to it by checksum."""

import json
import random
import subprocess
import sys

import pytest

from kit.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID, UNK_TEXT, TokenizerError
from kit.tokenizers.sentencepiece import SentencePieceTokenizer

MODEL_FILE = "tokenizer.model"  # the model of tokenizer.json: named after its JSON

WORDS = ["cat", "dog", "house", "mouse", "bird", "tree", "river", "stone", "light", "night"]
TEXTS = [" ".join(random.Random(i).choice(WORDS) for _ in range(5)) for i in range(400)]


@pytest.fixture(scope="module")
def tokenizer():
    return SentencePieceTokenizer.train(TEXTS, vocab_size=48)


def test_special_ids_and_round_trip(tokenizer):
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (
        PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    for text in TEXTS[:50] + ["  tree  stone ", "mouse"]:
        ids = tokenizer.encode(text)
        assert all(4 <= i < tokenizer.vocab_size for i in ids)
        assert tokenizer.decode(ids) == text
    # Subwords: fewer tokens than characters.
    assert len(tokenizer.encode(TEXTS[0])) < len(TEXTS[0]) / 2


def test_decode_stops_at_eos_and_shows_unknowns(tokenizer):
    ids = tokenizer.encode("cat dog")
    assert tokenizer.decode([BOS_ID] + ids + [EOS_ID] + tokenizer.encode(" tree")) == "cat dog"
    assert tokenizer.decode([PAD_ID] + ids + [PAD_ID]) == "cat dog"
    unseen = tokenizer.encode("cat xyz")
    assert UNK_ID in unseen and UNK_TEXT in tokenizer.decode(unseen)
    assert tokenizer.unknown_count("cat xyz") >= 1 and tokenizer.unknown_count("cat") == 0
    assert tokenizer.unknown_characters("cat xyz") == ["x", "y", "z"]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.decode([tokenizer.vocab_size])


def test_bpe_and_unigram_train(tmp_path):
    bpe = SentencePieceTokenizer.train(TEXTS, vocab_size=40, model_type="bpe")
    assert bpe.decode(bpe.encode("river stone")) == "river stone"
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceTokenizer.train(TEXTS, model_type="wordpiece")
    with pytest.raises(ValueError, match="vocab_size"):
        SentencePieceTokenizer.train(TEXTS, vocab_size=3)


def test_save_load_and_a_foreign_model_file(tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", MODEL_FILE]
    config = json.loads(path.read_text())
    assert SentencePieceTokenizer.from_dict(config, path) == tokenizer
    other = SentencePieceTokenizer.train(TEXTS[:100], vocab_size=30)
    (tmp_path / MODEL_FILE).write_bytes(other._model_proto)
    with pytest.raises(TokenizerError, match="SHA-256 differs"):
        SentencePieceTokenizer.from_dict(config, path)
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        SentencePieceTokenizer(b"not a model")


def test_same_ids_in_a_process_without_tensorflow(tokenizer, tmp_path):
    """What the device runs: a fresh process, only the tokenizer's own package."""
    tokenizer.save(tmp_path / "tokenizer.json")
    texts = TEXTS[:20] + ["unseen: é ü ß 語", ""]
    code = (
        "import json, sys\n"
        "from kit.tokenizers.sentencepiece import SentencePieceTokenizer\n"
        f"path = {str(tmp_path / 'tokenizer.json')!r}\n"
        "tok = SentencePieceTokenizer.from_dict(json.load(open(path)), path)\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps([tok.encode(t) for t in texts]))\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), text=True,
                         capture_output=True, check=True, timeout=60)
    ids, modules = out.stdout.splitlines()
    assert json.loads(ids) == [tokenizer.encode(t) for t in texts]
    assert modules == "[]"


def test_load_tokenizer_reads_either_kind_and_every_file(tokenizer, tmp_path):
    from kit.tokenizers import CharTokenizer, load_tokenizer

    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert loaded == tokenizer and loaded.files("tokenizer.json") == ["tokenizer.json",
                                                                        MODEL_FILE]
    assert CharTokenizer.train(["abc"]).files("tokenizer.json") == ["tokenizer.json"]
    # A bundle hands over the model's bytes itself, after checking them.
    asked = []

    def read_file(name):
        asked.append(name)
        return tokenizer._model_proto

    content = path.read_bytes()
    (tmp_path / MODEL_FILE).unlink()
    assert load_tokenizer(path, content=content, read_file=read_file) == tokenizer
    assert asked == [MODEL_FILE]
    with pytest.raises(TokenizerError, match="cannot read .*tokenizer.model"):
        load_tokenizer(path)


def test_two_models_share_a_directory_each_named_after_its_json(tokenizer, tmp_path):
    """A run or a bundle holds a source and a target tokenizer side by side."""
    from kit.tokenizers import load_tokenizer

    other = SentencePieceTokenizer.train(TEXTS[:200], vocab_size=30)
    tokenizer.save(tmp_path / "source_tokenizer.json")
    other.save(tmp_path / "target_tokenizer.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "source_tokenizer.json", "source_tokenizer.model", "target_tokenizer.json",
        "target_tokenizer.model"]
    assert tokenizer.files("source_tokenizer.json") == ["source_tokenizer.json",
                                                         "source_tokenizer.model"]
    assert json.loads((tmp_path / "target_tokenizer.json").read_text())["model_file"] == \
        "target_tokenizer.model"
    assert load_tokenizer(tmp_path / "source_tokenizer.json") == tokenizer
    assert load_tokenizer(tmp_path / "target_tokenizer.json") == other
    # The JSON records the model's SHA-256: the other side's model is refused.
    (tmp_path / "source_tokenizer.model").write_bytes(
        (tmp_path / "target_tokenizer.model").read_bytes())
    with pytest.raises(TokenizerError, match="source_tokenizer.model is not the model"):
        load_tokenizer(tmp_path / "source_tokenizer.json")
