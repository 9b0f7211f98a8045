"""Argument checks shared by the layers: the error names the argument and shows the value."""

import numbers

# The attention layers' additive bias on masked scores (kit/layers/_attention_core.py),
# here, free of Keras, so that the model config checks it before Keras loads.
# Added to the score of a masked key. exp(-1e4) is exactly 0 in float32 and the value
# (and the sum of two of them) still fits in float16, whose largest finite value is 65504.
# Full-integer (int8) export wants a small one instead: the softmax input is quantized
# over its whole range, and a -1e4 bias leaves one int8 step of ~40 for the real scores.
MASK_VALUE = -1e4
MIN_MASK_VALUE = -3e4  # two biases summed must stay inside float16


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def one_of(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. Received: {name}={value!r}"
        )
    return value


def mask_value(name, value):
    """A negative additive mask that two of can be summed without leaving float16."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            MIN_MASK_VALUE <= value < 0):
        raise ValueError(f"`{name}` must be a negative float >= {MIN_MASK_VALUE:g}. "
                         f"Received: {name}={value!r}")
    return float(value)


def boolean(name, value):
    # bool only: a string such as "False" would otherwise switch the option on.
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value
