"""Keeping native libraries' start-up chatter out of the kit's commands.

TensorFlow, absl and LiteRT write from C++ straight to the process's file descriptors
(oneDNN notices, "All log messages before absl::InitializeLog()", "Created TensorFlow
Lite XNNPACK delegate"), which no Python setting catches. A command's output is for its
own results and one-line errors, so these are silenced unless `--verbose` is given.
Standard library only: the device side uses it too.
"""

import contextlib
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


def quiet_libraries():
    """Before TensorFlow is imported: its C++ logs at errors only, Python warnings of
    libraries off, then TensorFlow (through Keras) imported with stderr muted, and
    absl's Python logging at errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    with native_output_silenced():
        import keras  # noqa: F401  (imports the TensorFlow backend: its notices go here)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
