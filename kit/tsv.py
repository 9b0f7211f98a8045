"""Reading a user's `source<TAB>target` file: the one reader of training and evaluate.

UTF-8 (a byte order mark is dropped), one pair a line; blank lines are ignored; a line
without exactly one tab, or with an empty side, is malformed and counted by its number.
Standard library only: `python -m kit evaluate BUNDLE_DIR` runs it on the device.
"""

import hashlib
import os
import stat


class TsvError(ValueError):
    """The file cannot be read as text pairs; one line for the user."""


def check_regular_file(spec, path):
    """TsvError unless `path` is a regular file (a link to one is fine), found by
    `os.stat` alone: opening a FIFO with no writer blocks forever and /dev/zero never
    ends, so such a path must be refused before anything opens it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TsvError(f"{spec}: file not found") from None
    except OSError as error:
        raise TsvError(f"{spec}: cannot read {path}: {error.strerror}") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else
            "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    also = "" if stat.S_ISDIR(mode) else " (pipes and devices are never read: save to a file)"
    raise TsvError(f"{spec}: {path} is {kind}, expected a file{also}")


def fingerprint(raw):
    """{"size": bytes, "sha256": hex digest} of a file's bytes: what a run records of
    its TSV file, to notice on resuming that the file was replaced."""
    return {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def read_tsv(spec, path):
    """(pairs, malformed line numbers) of the file at `path` (`spec` names it in errors).

    Raises TsvError for a path that is not a regular file (a directory, a FIFO, a
    device), a missing or unreadable file, or text that is not UTF-8 (naming the line
    and the byte).
    """
    return parse_tsv(spec, read_bytes(spec, path))


def read_bytes(spec, path):
    """The bytes of the TSV file at `path`, read once (to parse and to fingerprint);
    TsvError as `read_tsv` says."""
    check_regular_file(spec, path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise TsvError(f"{spec}: file not found") from None
    except OSError as error:
        raise TsvError(f"{spec}: cannot read {path}: {error.strerror}") from None
    return raw


def parse_tsv(spec, raw):
    """(pairs, malformed line numbers) of a TSV file's bytes; TsvError for text that is
    not UTF-8, naming the line and the byte."""
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


def spaces_warning(pairs, spec):
    """A warning line when fields of `pairs` begin or end with spaces (kept as they are:
    an output without them is then no exact match, and nothing else would say why), or
    None."""
    count = sum(1 for source, target in pairs
                if source != source.strip() or target != target.strip())
    if not count:
        return None
    return (f"warning: {count} of {len(pairs)} pairs of {spec} have spaces (or tabs) at "
            "the start or end of a field; they are kept as they are, so an output without "
            "them is not an exact match: strip them if they are not meant")
