"""`python -m kit COMMAND`: demo, train, export, decode, evaluate, attention.

Each command's module is imported only when that command runs, so that `decode` works
on a device where neither TensorFlow nor Keras is installed. Every command reads its
command line and reports what goes wrong by the one rule of `kit.commands`. `--verbose`, anywhere on
the command line, lets the libraries' start-up notices through (see `kit.quiet`).
"""

import sys

USAGE = """usage: python -m kit COMMAND [options]

commands:
  demo      train on the built-in data, export to LiteRT, decode (the whole flow)
  train     train a model on a data spec into a run directory
  export    convert a run directory into a verified LiteRT bundle
  decode    decode text with a bundle (numpy + LiteRT only)
  evaluate  score a run or a bundle on a TSV file (a bundle needs no TensorFlow)
  attention draw which tokens attended to which, for one input (a PNG)

python -m kit COMMAND --help shows a command's options; --verbose shows the libraries'
start-up notices, which are hidden otherwise."""


# The requirements file that brings each command's packages: the device's smaller
# environments (requirements-runtime.txt, requirements-tflite-runtime.txt) run decode
# and evaluate BUNDLE only.
_FULL = "requirements.txt (TensorFlow and Keras)"
_DEVICE = ("requirements-runtime.txt (or requirements-tflite-runtime.txt where "
           "ai-edge-litert has no wheel)")
_NEEDS = {"train": _FULL, "export": _FULL, "demo": _FULL, "attention": _FULL,
          "evaluate RUN": _FULL, "decode": _DEVICE, "evaluate BUNDLE": _DEVICE}
_OURS = ("kit", "training", "export", "benchmarks", "tests")


def _is_bundle(args):
    """Whether an argument that is not an option names a bundle directory (options may
    come first: `evaluate --data X BUNDLE`; an option's value is never a bundle)."""
    from pathlib import Path

    return any((Path(arg) / "bundle.json").is_file() for arg in args
               if not arg.startswith("-"))


def _command(name, args):
    """(the command's main function, whether it runs TensorFlow), or None."""
    if name == "decode":
        from kit.runtime.cli import main

        return main, False
    if name == "evaluate" and _is_bundle(args):
        from kit.runtime.evaluate import main

        return main, False
    module = {"train": "training.cli", "export": "export.cli", "demo": "export.demo",
              "evaluate": "training.evaluate_cli", "attention": "training.attention"}.get(name)
    if module is None:
        return None
    from kit.layout import sibling

    return sibling(module).main, True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    try:
        return _main(argv)
    except KeyboardInterrupt:  # a command that has no handler of its own at that moment
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as error:  # numpy only, so imported here: --help stays light
        from kit.decoding import NonFiniteLogits

        if not isinstance(error, NonFiniteLogits):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if not missing or missing in _OURS:
            raise  # the kit's own module: a bug, with its traceback
        key = argv[0] if argv[0] != "evaluate" else \
            f"evaluate {'BUNDLE' if _is_bundle(argv[1:]) else 'RUN'}"
        fix = ("pip install 'sentencepiece>=0.2,<0.3' (a subword tokenizer's model)"
               if missing == "sentencepiece" else f"pip install -r {_NEEDS.get(key, _FULL)}")
        print(f"error: python -m kit {key} needs the package {missing!r}, which is not "
              f"installed here: {fix}", file=sys.stderr)
        return 1


def _main(argv):
    found = _command(argv[0], argv[1:])
    if found is None:
        print(f"error: unknown command {argv[0]!r}; expected demo, train, export, decode, "
              "evaluate or attention", file=sys.stderr)
        return 2
    command, uses_tensorflow = found
    rest = [arg for arg in argv[1:] if arg != "--verbose"]
    if len(rest) == len(argv) - 1 and not {"-h", "--help"} & set(rest):
        from kit.quiet import native_stderr_to_null, quiet_libraries

        if uses_tensorflow:
            quiet_libraries()
        native_stderr_to_null()
    return command(rest)


if __name__ == "__main__":
    sys.exit(main())
