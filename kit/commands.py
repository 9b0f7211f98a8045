"""What every command does with what goes wrong: one line and an exit code.

A user error (the kit's own error classes, named by each command) and the machine's
refusal (an OSError: a full disk, a missing or read-only place) are one `error:` line
on stderr and exit 1; Ctrl-C is exit 130; anything else is a bug and keeps its
traceback. Standard library only: the device's commands use it too.
"""

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (`--limit abc`, `--kind bogus`): the
    kit's rule for user errors; exit 2, as argparse's own."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def os_error_text(error):
    """'No space left on device: /data/run/model.keras', from an OSError."""
    where = f": {error.filename}" if getattr(error, "filename", None) else ""
    return f"{error.strerror or error}{where}"


def run_command(body, user_errors, prefix="error"):
    """Runs `body()` (which returns the exit code) under the rules above."""
    try:
        return body()
    except user_errors as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{prefix}: {os_error_text(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
