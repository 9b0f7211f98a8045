"""`python -m kit COMMAND`: demo, train, export, decode.

Each command's module is imported only when that command runs, so that `decode` works
on a device where neither TensorFlow nor Keras is installed.
"""

import sys

USAGE = """usage: python -m kit COMMAND [options]

commands:
  demo     train on the built-in data, export to LiteRT, decode (the whole flow)
  train    train a model on a data spec into a run directory
  export   convert a run directory into a verified LiteRT bundle
  decode   decode text with a bundle (numpy + LiteRT only)

python -m kit COMMAND --help shows a command's options."""


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
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
