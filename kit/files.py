"""Writing files so that a reader sees the old one or the new one, never half of one.

The kit's one atomic writer, used by training (run.json, checkpoints' state, samples),
export (bundle.json, report.json) and the tokenizer. Standard library only: it runs on
the device side too.

Files get the permissions any other tool would give them (0666 less the user's umask),
not the 0600 of `tempfile.mkstemp`: a bundle exported by one user is read by another.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
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


def _landing(path):
    """Where writing `path` lands: (the regular file to rename a temporary over, False),
    or (`path`, True) when the bytes must be written into it in place.

    Symbolic links are followed, so that a link to a file keeps being a link and the
    file it names is replaced. What is not a regular file (a device such as /dev/null, a
    FIFO, a terminal) is never renamed over: that would turn it into a regular file.
    Neither is a file reached through /proc's links (/dev/stdout is /proc/self/fd/1):
    renaming over the file there would leave the process's own stream on the old one.
    A directory is an IsADirectoryError.
    """
    current = os.path.abspath(os.fspath(path))
    for _ in range(40):  # the kernel's own limit on links in one path
        try:
            status = os.lstat(current)
        except FileNotFoundError:
            return current, False  # a new file (or where a dangling link points)
        if stat.S_ISLNK(status.st_mode):
            directory = os.path.realpath(os.path.dirname(current))
            if directory == "/proc" or directory.startswith("/proc/"):
                return os.fspath(path), True
            current = os.path.normpath(os.path.join(directory, os.readlink(current)))
        elif stat.S_ISREG(status.st_mode):
            return current, False
        elif stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        else:
            return os.fspath(path), True
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(path))


def _write_into(path, source):
    """Copies the file `source` into the existing non-regular file `path` (a device, a
    FIFO, a stream), appending and never truncating; an OSError names `path`."""
    try:
        with open(source, "rb") as data, open(os.open(path, os.O_WRONLY | os.O_APPEND),
                                              "wb") as target:
            shutil.copyfileobj(data, target)
    except OSError as error:
        if error.filename is None:  # a failed write (ENOSPC on /dev/full) names nothing
            raise OSError(error.errno, error.strerror, os.fspath(path)) from None
        raise


@contextlib.contextmanager
def replacing(path, suffix=".tmp"):
    """Yields a temporary path beside `path` for the caller to write (by any means: a
    Keras `model.save`, a copy); when the block ends without an error the file is
    given the umask's permissions and renamed over `path` in one step. On any failure
    (a full disk, Ctrl-C) the temporary file is removed and `path` is left as it was.

    Only a regular file is renamed over (a link to one: the file it names). Into what
    is not one (/dev/null, /dev/stdout, a FIFO) the finished temporary, made in the
    system's temporary directory instead, is copied in place; a directory is an
    IsADirectoryError. See `_landing`.

    `suffix` is for writers that insist on one (Keras wants ".keras").
    """
    target, in_place = _landing(path)
    if in_place:
        fd, tmp = tempfile.mkstemp(suffix=suffix)
    else:
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.",
                                   suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        if in_place:
            _write_into(path, tmp)
            os.unlink(tmp)
        else:
            as_umask_allows(tmp)
            os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_synced(path, data: bytes | str) -> None:
    """Writes `data` (text is UTF-8 encoded) to `path` in place, flushed to disk: for
    the temporary path of `replacing`. What is not a regular file (a device, a FIFO)
    has no disk to flush to."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
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


def link_loop(path) -> bool:
    """Whether `path`, or a folder on the way to it, is a symbolic link that never ends
    (a loop, or one too deep to follow): checked with the other --out checks, so that
    such a path fails at once with its own words, not as "File exists" or a traceback."""
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == errno.ELOOP
    return False
