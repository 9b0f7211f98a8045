"""kit/tokenizers/word.py: one id per whitespace-separated symbol of a closed set
(phones, tags), standard library only."""

import json

import pytest

from kit.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    UNK_TEXT,
    TokenizerError,
    WordTokenizer,
    load_tokenizer,
)

PHONES = ["K AE1 T", "D AO1 G", "B ER1 D", "HH AW1 S", "M AW1 S", "T R IY1",
          "R IH1 V ER0", "S T OW1 N", "L AY1 T", "N AY1 T", "K AE1 T S"]


@pytest.fixture
def tok():
    return WordTokenizer.train(PHONES)


def test_one_id_per_symbol_and_round_trips(tok):
    for text in PHONES:
        ids = tok.encode(text)
        assert len(ids) == len(text.split()) and all(4 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    # A symbol is one token however many characters it has.
    assert tok.decode(tok.encode("ER0")) == "ER0" and len(tok.encode("ER0 AE1")) == 2


def test_whitespace_is_a_separator_and_decode_joins_with_one_space(tok):
    assert tok.encode("  K\tAE1\n T ") == tok.encode("K AE1 T")
    assert tok.decode(tok.encode("  K\tAE1\n T ")) == "K AE1 T"
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_unknown_symbols(tok):
    ids = tok.encode("K ZH AE1 ZH")
    assert ids[1] == ids[3] == UNK_ID
    assert tok.decode(ids) == f"K {UNK_TEXT} AE1 {UNK_TEXT}"
    assert tok.unknown_count("K ZH AE1 ZH Q") == 3
    assert tok.unknown_characters("K ZH AE1 ZH Q") == ["ZH", "Q"]
    # Case matters: "k" is another symbol than "K".
    assert tok.encode("k") == [UNK_ID]


def test_decode_stops_at_eos_skips_pad_and_bos_and_refuses_foreign_ids(tok):
    ids = tok.encode("K AE1 T")
    assert tok.decode([BOS_ID, *ids, EOS_ID, *tok.encode("D")]) == "K AE1 T"
    assert tok.decode([PAD_ID, *ids, PAD_ID]) == "K AE1 T"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


def test_vocabulary_by_count_then_text_and_its_limits():
    tok = WordTokenizer.train(["B A", "A C", "A B"])
    assert tok.vocabulary[4:] == ("A", "B", "C")
    assert WordTokenizer.train(["B A", "A C", "A B"], max_vocab=5).vocabulary[4:] == ("A",)
    assert WordTokenizer.train(["B A", "A C", "A B"], min_count=2).vocabulary[4:] == ("A", "B")


@pytest.mark.parametrize("vocabulary, message", [
    (["<pad>", "<unk>", "<s>", "</s>", "A B"], "without whitespace"),
    (["<pad>", "<unk>", "<s>", "</s>", ""], "non-empty word"),
    (["<pad>", "<unk>", "<s>", "</s>", "A", "A"], "more than once"),
    (["A"], "must start with"),
])
def test_constructor_validates_the_vocabulary(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        WordTokenizer(vocabulary)


def test_save_load_and_a_damaged_file(tok, tmp_path):
    path = tmp_path / "target_tokenizer.json"
    tok.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved == {"type": "word", "format_version": 1, "vocabulary": list(tok.vocabulary)}
    assert WordTokenizer.load(path) == load_tokenizer(path) == tok
    saved["vocabulary"].append("TWO WORDS")
    path.write_text(json.dumps(saved), encoding="utf-8")
    with pytest.raises(TokenizerError, match="target_tokenizer.json: invalid vocabulary"):
        load_tokenizer(path)
