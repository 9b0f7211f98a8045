"""The small checks bundle.json's readers share: JSON integers, objects with exactly
the expected keys, tensor specs, file names, values shown in one-line messages, and
the error they raise."""

import json
import os

MAX_DIMENSION = (1 << 31) - 1  # one axis of a tensor; TFLite shapes are int32


class BundleError(ValueError):
    """A bundle directory that is missing, incomplete or inconsistent (one line)."""


def integer(value):
    """`value` if it is a JSON integer (not a bool, not 1.0), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(spec, where, value, low, high, fail):
    if integer(value) is None or not low <= value <= high:
        fail(f"{where} must be an integer from {low} to {high}. Received: {shown(value)}")
    return value


def exact_object(parent, key, names, fail, where=None):
    """`parent[key]`, which must be an object holding exactly the keys `names`."""
    where = where or key
    value = parent[key]
    if not isinstance(value, dict):
        fail(f"{where} must be an object. Received: {shown(value)}")
    missing = [name for name in names if name not in value]
    if missing:
        fail(f"{where} lacks {', '.join(missing)}")
    extra = sorted(set(value) - set(names))
    if extra:
        fail(f"{where} has unknown keys {', '.join(map(shown, extra))}")
    return value


def tensor_spec(tensor, where, fail):
    """(shape, dtype) of one {"shape": [...], "dtype": "..."} entry."""
    if not isinstance(tensor, dict) or set(tensor) != {"shape", "dtype"}:
        fail(f"{where} must be an object with shape and dtype. Received: {shown(tensor)}")
    shape, dtype = tensor["shape"], tensor["dtype"]
    if not isinstance(shape, list) or not 0 < len(shape) <= 8 or any(
            integer(d) is None or not 1 <= d <= MAX_DIMENSION for d in shape):
        fail(f"{where}.shape must be a list of 1 to 8 positive integers. "
             f"Received: {shown(shape)}")
    if not isinstance(dtype, str):
        fail(f"{where}.dtype must be a string. Received: {shown(dtype)}")
    return shape, dtype


def shown(value, limit=60):
    """`value` for a one-line message: repr, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=True, default=repr) if not isinstance(value, str) \
        else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def plain_file_name(name):
    """A name that stays inside the bundle directory (no separators, no '..') and fits
    one line of a message or of bundle.txt (printable: no line break, no control
    character)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and name.isprintable()
            and os.path.basename(name) == name and "/" not in name and "\\" not in name)
