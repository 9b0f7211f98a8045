"""The face of every `python -m kit` command: one parser class, one set of number
options, one rule for what goes wrong.

Every command builds its parser with `CommandParser` and reads its numbers with
`integer` and `number`, so the same mistake reads the same in every command:

- A command line that cannot be read (an unknown option, a missing argument, a choice
  that is not offered, a number that is not a number): one line on stderr, `error:
  MESSAGE (see python -m kit COMMAND --help)`, and exit 2, as argparse's own code.
  argparse's usage block is left out: `--help` shows it.
- A value read but refused (a number outside its bounds, here or where only the data
  or the run knows them, such as --layer against the run's layers): one line, `error:
  --OPTION must be ..., got VALUE`, and exit 1.
- While the command runs (`run_command`): a user error (the kit's own error classes,
  named by each command) and the machine's refusal (an OSError: a full disk, a missing
  or read-only place) are one `error:` line and exit 1; Ctrl-C is exit 130; anything
  else is a bug and keeps its traceback. (export starts that line `export: error:`, as
  it starts its progress lines, which the demo interleaves with its own.)

`--help` prints the command's help on stdout and exits 0. Standard library only: the
device's commands (`decode`, `evaluate BUNDLE_DIR`) use it where neither TensorFlow nor
Keras is installed.
"""

import argparse
import functools
import sys

# Beam search's options in `decode` and `evaluate` (train's --beam-size is bounded
# alike, in training.options.LIMITS).
MAX_BEAM_SIZE = 64
MAX_LENGTH_PENALTY = 10.0


class CommandParser(argparse.ArgumentParser):
    """argparse for `python -m kit COMMAND`, with the usage errors of the rule above."""

    def __init__(self, command, **kwargs):
        super().__init__(prog=f"python -m kit {command}", **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _Number(argparse.Action):
    """An option holding one number of `kind`, within [low, high] where given. An
    action rather than a type: a refused value names its option, which a type's error
    cannot do without argparse's usage-error wording and exit code."""

    def __init__(self, option_strings, dest, kind, low, high, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.kind, self.low, self.high = kind, low, high

    def __call__(self, parser, namespace, text, option_string=None):
        try:
            value = self.kind(text)
        except ValueError:
            what = "an integer" if self.kind is int else "a number"
            raise argparse.ArgumentError(self, f"expected {what}, got {text!r}") from None
        refused = bounds_error(value, self.low, self.high)
        if refused:
            parser.exit(1, f"error: {option_string} {refused}\n")
        setattr(namespace, self.dest, value)


def bounds_error(value, low=None, high=None):
    """'must be from 1 to 64, got 0' where `value` is outside [low, high] (either may
    be None: unbounded), else None. NaN is outside every bound."""
    def shown(bound):
        return f"{bound:g}" if isinstance(bound, float) else str(bound)

    if low is not None and high is not None and not low <= value <= high:
        return f"must be from {shown(low)} to {shown(high)}, got {value}"
    if low is not None and not value >= low:
        return f"must be at least {shown(low)}, got {value}"
    if high is not None and not value <= high:
        return f"must be at most {shown(high)}, got {value}"
    return None


def integer(low=None, high=None):
    """The action of an integer option within [low, high] (None: unbounded):
    `parser.add_argument("--beam-size", action=integer(1, 64), default=1)`."""
    return functools.partial(_Number, kind=int, low=low, high=high)


def number(low=None, high=None):
    """The action of a float option within [low, high] (None: unbounded, where "nan"
    and "inf" are read as they are, for the command to judge)."""
    return functools.partial(_Number, kind=float, low=low, high=high)


def os_error_text(error):
    """'No space left on device: /data/run/model.keras', from an OSError."""
    where = f": {error.filename}" if getattr(error, "filename", None) else ""
    return f"{error.strerror or error}{where}"


def run_command(body, user_errors):
    """Runs `body()` (which returns the exit code) under the rules above."""
    try:
        return body()
    except user_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {os_error_text(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
