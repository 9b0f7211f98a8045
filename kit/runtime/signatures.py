"""The names of the exported model's signatures and of their tensors.

They are the contract between the Keras model (`Seq2SeqTransformer.encode` and
`decode_step` key their dicts by them), the converter (export/convert.py), bundle.json's
checks and the device's decode loops, so each of those imports them from here. Plain
Python, importable where neither TensorFlow, Keras nor numpy is.

    encode(source_ids) -> source_mask, cross_key_i, cross_value_i
    decode_step(token_ids, position, source_mask, cross_key_i, cross_value_i,
                self_key_i, self_value_i) -> logits, self_key_i, self_value_i

for every decoder layer i (shapes: README, "The exported file": keys and values
(B, H, L, Dh)). A renamed tensor is another bundle format.
"""

ENCODE = "encode"
DECODE_STEP = "decode_step"
SIGNATURES = (ENCODE, DECODE_STEP)

SOURCE_IDS = "source_ids"
SOURCE_MASK = "source_mask"
TOKEN_IDS = "token_ids"
POSITION = "position"
LOGITS = "logits"
_CROSS_KEY = "cross_key_"


def variant_signatures(batch, source_length, full_source_length):
    """(encode, decode_step): the names of the signature pair that decodes `batch` rows
    of sources of at most `source_length` tokens. The pair for one row of the model's
    full S is `encode` and `decode_step`; every other is named by its shape, e.g.
    `encode_b32_s16` and `decode_step_b32_s16`."""
    if batch == 1 and source_length == full_source_length:
        return ENCODE, DECODE_STEP
    return f"{ENCODE}_b{batch}_s{source_length}", f"{DECODE_STEP}_b{batch}_s{source_length}"


def layer_cross_names(layer):
    """(key, value): the names of decoder layer `layer`'s cross-attention keys and
    values, which `encode` computes once per sentence."""
    return f"{_CROSS_KEY}{layer}", f"cross_value_{layer}"


def layer_cache_names(layer):
    """(key, value): the names of decoder layer `layer`'s self-attention cache, each an
    input of `decode_step` and the output of that name (the input updated in place)."""
    return f"self_key_{layer}", f"self_value_{layer}"


def cache_names(layers):
    """Every cache tensor of `layers` decoder layers: self_key_0, self_value_0, ..."""
    return tuple(name for i in range(layers) for name in layer_cache_names(i))


def encode_outputs(layers):
    """`encode`'s outputs, each also an input of `decode_step`: source_mask, then
    cross_key_0, cross_value_0, ..."""
    return (SOURCE_MASK, *(name for i in range(layers) for name in layer_cross_names(i)))


def decode_step_inputs(layers):
    """`decode_step`'s inputs: the token and its position, encode's outputs, the cache."""
    return (TOKEN_IDS, POSITION, *encode_outputs(layers), *cache_names(layers))


def decode_step_outputs(layers):
    return (LOGITS, *cache_names(layers))


def count_layers(names):
    """How many decoder layers `names` (encode's outputs as a bundle.json lists them,
    not yet checked) hold cross-attention keys for."""
    return sum(1 for name in names if isinstance(name, str) and name.startswith(_CROSS_KEY))
