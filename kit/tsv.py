"""Reading a user's `source<TAB>target` file: the one reader of training and evaluate.

UTF-8 (a byte order mark is dropped), one pair a line; blank lines are ignored; a line
without exactly one tab, or with an empty side, is malformed and counted by its number.
Standard library only: `python -m kit evaluate BUNDLE_DIR` runs it on the device.
"""

import os


class TsvError(ValueError):
    """The file cannot be read as text pairs; one line for the user."""


def read_tsv(spec, path):
    """(pairs, malformed line numbers) of the file at `path` (`spec` names it in errors).

    Raises TsvError for a directory, a missing or unreadable file, or text that is not
    UTF-8 (naming the line and the byte).
    """
    if os.path.isdir(path):
        raise TsvError(f"{spec}: {path} is a directory, expected a file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise TsvError(f"{spec}: file not found") from None
    except OSError as error:
        raise TsvError(f"{spec}: cannot read {path}: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise TsvError(f"{spec}: not UTF-8 (byte 0x{raw[error.start]:02x} at line {line}, "
                       f"byte offset {error.start}); save the file as UTF-8") from None
    # A byte order mark (some Windows editors write one) is not part of the first source.
    text = text.removeprefix("\ufeff")
    pairs, bad_lines = [], []
    # split("\n"), not splitlines(): splitlines also breaks at \v, \f, \x1c, \u2028...,
    # which may sit inside a text and would make our line numbers disagree with editors.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            bad_lines.append(number)
            continue
        pairs.append((fields[0], fields[1]))
    return pairs, bad_lines
