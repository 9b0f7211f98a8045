"""Writing files so that a reader sees the old one or the new one, never half of one.

The kit's one atomic writer, used by training (run.json, checkpoints' state, samples),
export (bundle.json, report.json) and the tokenizer. Standard library only: it runs on
the device side too.

Files get the permissions any other tool would give them (0666 less the user's umask),
not the 0600 of `tempfile.mkstemp`: a bundle exported by one user is read by another.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_umask_allows(path, mode=0o666):
    """Gives `path` the permissions `open()` would have given a new file (or, with
    mode 0o777, `mkdir` a new directory): `tempfile` creates both owner-only."""
    os.chmod(path, mode & ~current_umask())


@contextlib.contextmanager
def replacing(path, suffix=".tmp"):
    """Yields a temporary path beside `path` for the caller to write (by any means: a
    Keras `model.save`, a copy); when the block ends without an error the file is
    given the umask's permissions and renamed over `path` in one step. On any failure
    (a full disk, Ctrl-C) the temporary file is removed and `path` is left as it was.

    `suffix` is for writers that insist on one (Keras wants ".keras").
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        as_umask_allows(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_synced(path, data: bytes | str) -> None:
    """Writes `data` (text is UTF-8 encoded) to `path` in place, flushed to disk: for
    the temporary path of `replacing`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def remove_partial_writes(directory, names):
    """Removes what `replacing` left beside `names` in `directory` when its process was
    killed mid-write (SIGKILL, a power cut: no `except` runs then): the hidden
    `.{name}.*` temporary files. Returns how many. For the directory's owner only."""
    removed = 0
    for entry in os.scandir(directory):
        if entry.is_file() and any(entry.name.startswith(f".{name}.") for name in names):
            os.unlink(entry.path)
            removed += 1
    return removed


def atomic_write(path, data: bytes | str) -> None:
    """Writes `data` (text is UTF-8 encoded) to `path` atomically, flushed to disk."""
    with replacing(path) as tmp:
        write_synced(tmp, data)


def json_text(values, **dumps_options) -> str:
    """`values` as indented, key-sorted JSON with a final newline."""
    options = {"indent": 2, "sort_keys": True, **dumps_options}
    return json.dumps(values, **options) + "\n"


def write_json(path, values, **dumps_options) -> None:
    """`values` as `json_text`, atomically."""
    atomic_write(path, json_text(values, **dumps_options))
