"""What training says about a vocabulary that loses characters (issue 16's list)."""

from training.choices import MAX_CHAR_VOCAB, train_side_tokenizer


def test_a_small_vocab_size_says_what_share_becomes_unknown():
    texts = ["the quick brown fox jumps over the lazy dog"] * 3 + ["zzz"]
    tokenizer, record = train_side_tokenizer(texts, "source", "char", vocab_size=8)
    assert tokenizer.vocab_size == 8
    first, warning = record["message"].splitlines()
    assert first.startswith("source tokenizer char, 8 tokens (--vocab-size 8")
    assert warning.startswith("warning: ") and "% of the training sources' characters read "\
        "as unknown" in warning and "--vocab-size" in warning


def test_every_character_kept_says_nothing_more():
    _, record = train_side_tokenizer(["abc", "cab"], "target", "char")
    assert "\n" not in record["message"]


def test_a_char_vocabulary_of_many_scripts_is_capped():
    """50,000 distinct characters each got an embedding row and an output logit."""
    rare = [chr(0x4E00 + i) for i in range(MAX_CHAR_VOCAB + 500)]
    texts = ["ab" * 50] * 20 + ["".join(rare[i:i + 50]) for i in range(0, len(rare), 50)]
    tokenizer, record = train_side_tokenizer(texts, "target", "char")
    assert tokenizer.vocab_size == MAX_CHAR_VOCAB
    assert f"the {MAX_CHAR_VOCAB} most frequent characters" in record["message"]
    assert tokenizer.unknown_count("ab") == 0
