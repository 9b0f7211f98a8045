"""Keeping native libraries' start-up chatter out of the kit's commands.

TensorFlow, absl and LiteRT write from C++ straight to the process's file descriptors
(oneDNN notices, "All log messages before absl::InitializeLog()", "Created TensorFlow
Lite XNNPACK delegate"), which no Python setting catches. A command's output is for its
own results and one-line errors, so these are silenced unless `--verbose` is given.
Standard library only: the device side uses it too.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def native_output_silenced(descriptors=(2,)):
    """Sends what is written to `descriptors` (1 stdout, 2 stderr) during the block to
    a discarded file, Python's and native code's alike. An error still reaches the
    caller as its exception. Descriptor-wide: other threads are muted too meanwhile."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    try:
        saved = {fd: os.dup(fd) for fd in descriptors}
    except OSError:  # no such descriptor (a daemon): nothing to mute
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as Python would, and runs its import with stderr muted: its
    C++ start-up notices are printed while the module loads. Nothing is imported
    before a command asks for it, so bad input still fails before TensorFlow loads."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import; and no recursion in find_spec below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            with native_output_silenced():
                loader_exec(module)
            with contextlib.suppress(ImportError):
                from absl import logging as absl_logging

                absl_logging.set_verbosity(absl_logging.ERROR)

        spec.loader.exec_module = exec_module
        return spec


def native_stderr_to_null():
    """For the rest of the process: what native code writes to file descriptor 2 goes
    to /dev/null, while Python's `sys.stderr` (the kit's warnings and errors, and any
    traceback) keeps writing where stderr went. LiteRT's CompiledModel logs its
    environment's creation and, at exit, its teardown from C++: no block can catch that.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    try:
        kept = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no descriptor 2 (a daemon): nothing to route
        return
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = os.fdopen(kept, "w", buffering=1, encoding=encoding,
                           errors="backslashreplace")
    os.dup2(devnull, 2)
    os.close(devnull)


def quiet_libraries():
    """For a command that may import TensorFlow: its C++ logs at errors only, Python
    warnings of libraries off, and its import (whenever it happens) with stderr muted."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
