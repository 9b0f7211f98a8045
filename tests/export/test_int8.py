"""export/int8.py: the calibration steps are the model's own greedy decoding, step by step."""

import numpy as np

from export.int8 import int8_mask_value, representative_samples
from kit.decoding import until_eos

BOS, EOS = 2, 3


def test_recorded_steps_follow_the_greedy_path():
    from kit.models import Seq2SeqTransformer, preset

    model = Seq2SeqTransformer(preset("tiny"))
    model.build()
    rng = np.random.default_rng(3)
    sources = rng.integers(4, 32, size=(5, 16)).astype(np.int32)
    for i in range(len(sources)):  # a length of its own: the mask tells rows apart
        sources[i, 6 + i:] = 0
    # An untrained model's argmax is arbitrary: raise EOS's logit until rows stop at
    # different steps, so that finished rows must be left out while others go on.
    for eos_bias in np.linspace(0.0, 5.0, 51):
        model.output_projection.bias.assign(
            np.where(np.arange(32) == EOS, eos_bias, 0.0).astype(np.float32))
        lengths = {len(until_eos(row, EOS)) for row in model.greedy_decode(sources, BOS, EOS)}
        if len(lengths) > 1:
            break
    assert len(lengths) > 1, "no EOS bias made the rows stop at different steps"

    encode_inputs, decode_inputs = representative_samples(model, sources, BOS, EOS,
                                                          batch_size=2)
    np.testing.assert_array_equal(encode_inputs["source_ids"], sources)
    paths = [until_eos(row, EOS) for row in model.greedy_decode(sources, BOS, EOS)]
    # One recorded step per token each row generated (EOS included), nothing after.
    assert len(decode_inputs["position"]) == sum(len(path) for path in paths)
    fed = {}
    for token, position, mask in zip(decode_inputs["token_ids"][:, 0],
                                     decode_inputs["position"],
                                     decode_inputs["source_mask"]):
        row = next(i for i in range(len(sources))
                   if np.array_equal(mask, (sources[i] != 0).astype(np.float32)))
        assert (row, int(position)) not in fed
        fed[(row, int(position))] = int(token)
    for row, path in enumerate(paths):
        assert [fed[(row, p)] for p in range(len(path))] == [BOS] + path[:-1]
    T = model.config.max_target_length
    for name in model.cache_names():
        assert decode_inputs[name].shape[1:] == model.cache_shapes(1)[name][1:]
    assert decode_inputs["position"].max() < T - 1
    # The cache fed at position 0 is empty, later ones are not.
    first = decode_inputs["position"] == 0
    assert not decode_inputs["self_key_0"][first].any()
    assert decode_inputs["self_key_0"][~first].any()


def test_mask_value_is_the_lead_plus_margin_rounded_and_capped():
    assert int8_mask_value({"max_masked_lead": 10.8}, -1e4) == -30.0
    assert int8_mask_value({"max_masked_lead": None}, -1e4) == -15.0
    assert int8_mask_value({"max_masked_lead": -3.0}, -1e4) == -15.0
    assert int8_mask_value({"max_masked_lead": 500.0}, -100.0) == -100.0
