"""`python -m kit COMMAND`: demo, train, export, decode.

Each command's module is imported only when that command runs, so that `decode` works
on a device where neither TensorFlow nor Keras is installed. `--verbose`, anywhere on
the command line, lets the libraries' start-up notices through (see `kit.quiet`).
"""

import sys

# Commands that run TensorFlow: their libraries are imported quietly up front.
USES_TENSORFLOW = ("demo", "train", "export")

USAGE = """usage: python -m kit COMMAND [options]

commands:
  demo     train on the built-in data, export to LiteRT, decode (the whole flow)
  train    train a model on a data spec into a run directory
  export   convert a run directory into a verified LiteRT bundle
  decode   decode text with a bundle (numpy + LiteRT only)

python -m kit COMMAND --help shows a command's options; --verbose shows the libraries'
start-up notices, which are hidden otherwise."""


def _command(name):
    if name == "train":
        from training.cli import main
    elif name == "export":
        from export.cli import main
    elif name == "decode":
        from kit.runtime.cli import main
    elif name == "demo":
        from export.demo import main
    else:
        return None
    return main


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command = _command(argv[0])
    if command is None:
        print(f"error: unknown command {argv[0]!r}; expected demo, train, export or decode",
              file=sys.stderr)
        return 2
    sys.argv[0] = f"python -m kit {argv[0]}"  # what argparse shows as the program name
    rest = [arg for arg in argv[1:] if arg != "--verbose"]
    if len(rest) == len(argv) - 1 and argv[0] in USES_TENSORFLOW \
            and not {"-h", "--help"} & set(rest):
        from kit.quiet import quiet_libraries

        quiet_libraries()
    return command(rest)


if __name__ == "__main__":
    sys.exit(main())
