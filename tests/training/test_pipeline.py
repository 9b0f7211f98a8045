import numpy as np
import pytest

from kit.tokenizers import BOS_ID, EOS_ID, CharTokenizer, TokenizerPair
from training.dates import default_splits
from training.pipeline import bucket_boundaries, encode_split, make_dataset

PAIRS = default_splits(0, train_size=600, validation_size=10, test_size=10)["train"]
TOKENIZER = TokenizerPair(CharTokenizer.train(s for s, _ in PAIRS),
                          CharTokenizer.train(t for _, t in PAIRS))


def batches(dataset):
    return [((s.numpy(), d.numpy()), y.numpy(), w.numpy()) for (s, d), y, w in dataset]


def test_targets_are_shifted_into_decoder_inputs_and_labels():
    split = encode_split(PAIRS[:50], TOKENIZER, 48, 16)
    for (_, decoder_in), labels, weights in batches(make_dataset(split, 8, shuffle=False)):
        assert (decoder_in[:, 0] == BOS_ID).all()
        real = labels != 0
        np.testing.assert_array_equal(weights, real.astype("float32"))
        for row in range(len(labels)):
            n = int(real[row].sum())
            assert labels[row, n - 1] == EOS_ID
            np.testing.assert_array_equal(decoder_in[row, 1:n], labels[row, :n - 1])
            ids = TOKENIZER.target.encode(TOKENIZER.target.decode(labels[row, :n].tolist()))
            np.testing.assert_array_equal(labels[row, :n - 1], ids)


def test_every_pair_appears_once_per_epoch():
    split = encode_split(PAIRS, TOKENIZER, 48, 16)
    seen = sorted(TOKENIZER.source.decode(s[s != 0].tolist())
                  for (source, _), _, _ in batches(make_dataset(split, 32, shuffle=True, seed=3))
                  for s in source)
    assert seen == sorted(TOKENIZER.source.decode(TOKENIZER.source.encode(s)) for s, _ in PAIRS)


def test_shuffling_is_deterministic_by_seed():
    split = encode_split(PAIRS, TOKENIZER, 48, 16)

    def order(seed):
        dataset = make_dataset(split, 32, shuffle=True, seed=seed)
        return [b[0][0].tobytes() for b in batches(dataset)]

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_bucketing_spends_less_on_padding_than_padding_to_the_longest():
    split = encode_split(PAIRS, TOKENIZER, 48, 16)
    real = padded = 0
    for (source, _), _, _ in batches(make_dataset(split, 32, shuffle=True)):
        real += int((source != 0).sum())
        padded += source.size
    # The tutorial's pipeline: shuffled batches padded to their longest source.
    naive = sum(source.size for (source, _), _, _ in batches(
        make_dataset(split, 32, shuffle=True, bucket_width=None)))
    assert padded / real < 1.3, padded / real
    assert padded < 0.8 * naive, (padded, naive)


def test_truncation_is_counted():
    split = encode_split([("a" * 30, "b" * 20), ("abc", "de")], TOKENIZER, 10, 8)
    assert (split.source_truncated, split.target_truncated) == (1, 1)
    assert len(split.sources[0]) == 10 and len(split.targets[0]) == 7


def test_static_shapes_give_few_shapes():
    split = encode_split(PAIRS, TOKENIZER, 48, 16)
    shapes = {(b[0][0].shape[1], b[0][1].shape[1], b[1].shape[1]) for b in batches(
        make_dataset(split, 32, shuffle=True, static_shapes=(48, 16)))}
    assert {s for s, _, _ in shapes} <= {b - 1 for b in bucket_boundaries(48)} | {48}
    assert {(t, y) for _, t, y in shapes} == {(16, 16)}


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size=0"):
        make_dataset(encode_split(PAIRS[:5], TOKENIZER, 48, 16), 0, shuffle=False)
