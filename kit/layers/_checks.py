"""Argument checks shared by the layers: the error names the argument and shows the value."""

import numbers


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
    from kit.layers._attention_core import MIN_MASK_VALUE

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
