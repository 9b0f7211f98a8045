"""`python -m kit decode BUNDLE_DIR [TEXT ...]`: greedy decoding with a bundle.

Needs numpy and a LiteRT interpreter only (no TensorFlow, no Keras): this is the
command to run on the device. With no TEXT it reads one input per line of standard
input and writes one output per line, so it composes with other programs.
"""

import argparse
import sys

from kit.runtime.bundle import Bundle, BundleError
from kit.runtime.interpreter import RuntimeUnavailable


def build_parser():
    parser = argparse.ArgumentParser(
        description="Decode text with an exported bundle (greedy, with the KV cache). "
                    "Without TEXT, reads one input per line of standard input.")
    parser.add_argument("bundle", metavar="BUNDLE_DIR", help="a directory made by export")
    parser.add_argument("texts", metavar="TEXT", nargs="*", help="inputs to decode")
    parser.add_argument("--threads", type=int, default=None,
                        help="interpreter CPU threads (default: LiteRT's choice)")
    return parser


def _inputs(texts):
    if texts:
        yield from texts
    else:
        # Bytes, decoded strictly: the locale's stdin decoding may hide bad input.
        for raw in sys.stdin.buffer:
            yield raw.decode("utf-8").rstrip("\r\n")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads <= 0:
        print(f"error: --threads must be positive, got {args.threads}", file=sys.stderr)
        return 1
    try:
        bundle = Bundle.load(args.bundle, num_threads=args.threads)
    except (BundleError, RuntimeUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        for text in _inputs(args.texts):
            print(bundle.translate(text), flush=True)
    except UnicodeDecodeError:
        print("error: standard input is not UTF-8 text", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return 0
    return 0
