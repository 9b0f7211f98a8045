"""The checks of bundle.json's `variants` and `signatures`: every signature pair the
file holds, each with the names, shapes and dtypes the decode loops rely on.

A variant is one (batch B, source length S') pair of signatures, `encode` and
`decode_step`, sharing the file's weights:

    "variants": [{"batch": 1, "source_length": 40, "encode": "encode",
                  "decode_step": "decode_step"},
                 {"batch": 1, "source_length": 24, "encode": "encode_b1_s24", ...}, ...]

The (1, S) variant, named `encode` and `decode_step`, is always there; the others are
optional. Imports neither TensorFlow, Keras nor numpy.
"""

from kit.runtime._spec_checks import exact_object, integer, shown, tensor_spec
from kit.runtime.signatures import (
    DECODE_STEP,
    ENCODE,
    LOGITS,
    POSITION,
    SOURCE_IDS,
    SOURCE_MASK,
    TOKEN_IDS,
    cache_names,
    count_layers,
    decode_step_inputs,
    decode_step_outputs,
    encode_outputs,
    layer_cross_names,
)

MAX_LAYERS = 1024
MAX_VARIANTS = 64
MAX_BATCH = 4096
_VARIANT_KEYS = ("batch", "source_length", ENCODE, DECODE_STEP)


def check_variants(spec, fail):
    """bundle.json's `variants`, checked: a list of distinct (batch, source_length)
    pairs within (1..MAX_BATCH, 1..S), each naming its two signatures, one of them
    (1, S) named `encode` and `decode_step`."""
    S, variants = spec["source_length"], spec["variants"]
    if not isinstance(variants, list) or not 1 <= len(variants) <= MAX_VARIANTS:
        fail(f"variants must be a list of 1 to {MAX_VARIANTS} objects. "
             f"Received: {shown(variants)}")
    seen, names = set(), set()
    for i, variant in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(variant, dict):
            fail(f"{where} must be an object. Received: {shown(variant)}")
        exact_object({where: variant}, where, _VARIANT_KEYS, fail)
        for key, high in (("batch", MAX_BATCH), ("source_length", S)):
            value = variant[key]
            if integer(value) is None or not 1 <= value <= high:
                fail(f"{where}.{key} must be an integer from 1 to {high}. "
                     f"Received: {shown(value)}")
        pair = (variant["batch"], variant["source_length"])
        if pair in seen:
            fail(f"{where} repeats batch {pair[0]}, source_length {pair[1]}")
        seen.add(pair)
        for key in (ENCODE, DECODE_STEP):
            if not isinstance(variant[key], str) or not variant[key] or variant[key] in names:
                fail(f"{where}.{key} must be a signature name no other variant uses. "
                     f"Received: {shown(variant[key])}")
            names.add(variant[key])
        if pair == (1, S) and (variant[ENCODE], variant[DECODE_STEP]) != (ENCODE, DECODE_STEP):
            fail(f"{where} is the (1, S={S}) variant: its signatures must be "
                 f"{ENCODE!r} and {DECODE_STEP!r}")
    if (1, S) not in seen:
        fail(f"variants lacks the batch 1, source_length S={S} variant "
             f"({ENCODE!r} and {DECODE_STEP!r})")
    return variants


def check_signatures(spec, T, V, fail):
    """Checks `signatures` against `variants`: exactly their signatures, each with the
    tensor names of the decoding contract and the shapes its batch B, its source length
    S', the cache's T slots and the target vocabulary V give (README, "The exported
    file"); H and Dh the same in every tensor and variant."""
    variants = check_variants(spec, fail)
    expected = [variant[key] for variant in variants for key in (ENCODE, DECODE_STEP)]
    signatures = exact_object(spec, "signatures", expected, fail)
    tensors = {}
    for key in expected:
        sides = exact_object(signatures, key, ("inputs", "outputs"), fail, f"signatures.{key}")
        for side in ("inputs", "outputs"):
            where = f"signatures.{key}.{side}"
            if not isinstance(sides[side], dict):
                fail(f"{where} must be an object. Received: {shown(sides[side])}")
            for name, tensor in sides[side].items():
                tensors[key, side, name] = tensor_spec(tensor, f"{where}.{name}", fail)
    layers = count_layers(signatures[ENCODE]["outputs"])
    first_cross = layer_cross_names(0)[0]
    if not 1 <= layers <= MAX_LAYERS:
        fail(f"signatures.{ENCODE}.outputs must name {first_cross} .. "
             f"{layer_cross_names('(L-1)')[0]} for 1 to {MAX_LAYERS} decoder layers. "
             f"Received: {layers} of them")
    shape = tensors.get((ENCODE, "outputs", first_cross), ([0, 0, 0, 0], None))[0]
    heads = (shape[1], shape[3]) if len(shape) == 4 else (0, 0)
    for variant in variants:
        _check_pair(variant, layers, heads, T, V, signatures, tensors, fail)


def _check_pair(variant, layers, heads, T, V, signatures, tensors, fail):
    """One variant's two signatures: names, dtypes and shapes."""
    B, S = variant["batch"], variant["source_length"]
    encode, decode = variant[ENCODE], variant[DECODE_STEP]
    H, Dh = heads
    encoded, caches = encode_outputs(layers), cache_names(layers)
    expected_names = {
        (encode, "inputs"): (SOURCE_IDS,),
        (encode, "outputs"): encoded,
        (decode, "inputs"): decode_step_inputs(layers),
        (decode, "outputs"): decode_step_outputs(layers),
    }
    for (key, side), names in expected_names.items():
        have = set(signatures[key][side])
        if have != set(names):
            fail(f"signatures.{key}.{side} must name {', '.join(sorted(names))}. "
                 f"Received: {', '.join(sorted(map(str, have))) or 'none'}")

    def expect(key, side, name, dtype, shape, meaning):
        found_shape, found_dtype = tensors[key, side, name]
        where = f"signatures.{key}.{side}.{name}"
        if found_dtype != dtype:
            fail(f"{where} must be {dtype}. Received: {shown(found_dtype)}")
        if found_shape != list(shape):
            fail(f"{where} has shape {found_shape}, expected {meaning}")

    expect(encode, "inputs", SOURCE_IDS, "int32", (B, S), f"(B={B}, S={S})")
    expect(encode, "outputs", SOURCE_MASK, "float32", (B, S), f"(B={B}, S={S})")
    # Keys and values (B, H, L, Dh): L is S across, T in the cache.
    for key, sides, length, what, names in ((encode, ("outputs",), S, "S", encoded[1:]),
                                            (decode, ("inputs", "outputs"), T, "T", caches)):
        for name in names:
            for side in sides:
                expect(key, side, name, "float32", (B, H, length, Dh),
                       f"(B={B}, H={H}, {what}={length}, Dh={Dh})")
    expect(decode, "inputs", TOKEN_IDS, "int32", (B, 1), f"(B={B}, 1)")
    expect(decode, "inputs", POSITION, "int32", (1,), "(1,): every row at one position")
    expect(decode, "outputs", LOGITS, "float32", (B, V), f"(B={B}, V={V}) with V "
                                                         "vocab_size.target")
    for name in encoded:
        if tensors[decode, "inputs", name] != tensors[encode, "outputs", name]:
            fail(f"signatures.{decode}.inputs.{name} differs from {encode}'s output "
                 f"{name}, which the loop passes to it")
