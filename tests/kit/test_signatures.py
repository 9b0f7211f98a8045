"""kit/runtime/signatures.py: the names are the bundle format's, and the Keras model and
the converter use exactly them."""

import numpy as np

from kit.runtime import signatures


def test_the_names_are_the_bundle_formats():
    """Spelled out here on purpose: a renamed tensor is another bundle format."""
    assert signatures.SIGNATURES == ("encode", "decode_step")
    assert signatures.decode_step_inputs(2) == (
        "token_ids", "position", "source_mask", "cross_key_0", "cross_value_0",
        "cross_key_1", "cross_value_1", "self_key_0", "self_value_0", "self_key_1",
        "self_value_1")
    assert signatures.decode_step_outputs(1) == ("logits", "self_key_0", "self_value_0")
    assert signatures.count_layers(signatures.encode_outputs(3)) == 3
    assert signatures.count_layers(["cross_value_0", 7, "source_mask"]) == 0


def test_the_keras_model_and_the_converter_use_them():
    from export.convert import decode_step_inputs
    from kit.models import Seq2SeqTransformer, preset

    model = Seq2SeqTransformer(preset("tiny", num_decoder_layers=2))
    encoded = model.encode(np.array([[5, 6, 0]], np.int32))
    assert tuple(encoded) == signatures.encode_outputs(2)
    _, cache = model.decode_step(np.array([[2]], np.int32), 0, model.init_cache(1), encoded)
    assert tuple(cache) == signatures.cache_names(2)
    # The converter declares decode_step's inputs in this order.
    assert tuple(decode_step_inputs(model.config)) == signatures.decode_step_inputs(2)
