"""`python -m kit demo`: the whole flow on the built-in data, in one command.

Train the `small` model on the built-in dates data (or resume it), export it to one
quantized LiteRT bundle with the verification table, then decode a few dates with the
on-device runtime (numpy + LiteRT only). Running it again reuses what is done.
"""

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = (
    "Sun 29 Nov 2026",
    "november 3rd, 1999",
    "03.04.05",
    "the 1st of January 2000",
    "TUESDAY, 14 FEBRUARY 2045",
    "1969/07/20",
)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train on the built-in data (dates -> ISO 8601), export a verified "
                    "LiteRT bundle, and decode examples with the on-device runtime.")
    parser.add_argument("--run", default="runs/demo", help="run directory (default: %(default)s)")
    parser.add_argument("--bundle", default="bundles/demo",
                        help="bundle directory (default: %(default)s)")
    parser.add_argument("--recipe", default="dynamic_int8",
                        choices=("float32", "float16", "dynamic_int8", "int8"),
                        help="quantization recipe (default: %(default)s)")
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "base"),
                        help="model size (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the train command's)")
    parser.add_argument("texts", metavar="TEXT", nargs="*",
                        help="dates to decode at the end (default: a few examples)")
    return parser


def _existing_bundle_of(bundle, run):
    """True when `bundle` is a finished bundle exported from `run` by this version of the
    kit (a bundle of an older format is exported again)."""
    from kit.runtime import BUNDLE_FORMAT_VERSION, BUNDLE_JSON, REPORT_JSON

    try:
        report = json.loads((Path(bundle) / REPORT_JSON).read_text())
        spec = json.loads((Path(bundle) / BUNDLE_JSON).read_text())
        return (Path(report["source_run"]).resolve() == Path(run).resolve()
                and spec["format_version"] == BUNDLE_FORMAT_VERSION)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def main(argv=None):
    args = build_parser().parse_args(argv)
    from training.train import TrainError, TrainOptions, train

    options = TrainOptions(data="default", out=args.run, preset=args.preset)
    if args.epochs is not None:
        options.epochs = args.epochs
    print(f"== 1/3 train: {args.preset} model on the built-in dates data into {args.run}",
          flush=True)
    try:
        train(options)
    except TrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the demo again to resume {args.run}", file=sys.stderr)
        return 130

    print(f"== 2/3 export: {args.recipe} bundle into {args.bundle}", flush=True)
    from kit.runtime import Bundle, BundleError, RuntimeUnavailable

    if _existing_bundle_of(args.bundle, args.run):
        print(f"{args.bundle} already holds a bundle of {args.run}; reusing it")
    else:
        from export.cli import main as export_main

        # --overwrite replaces only a bundle (of an older run or format): export
        # refuses any other directory.
        code = export_main([args.run, "--recipe", args.recipe, "--out", args.bundle,
                            "--overwrite"])
        if code:
            return code

    print("== 3/3 decode with the on-device runtime (numpy + LiteRT, no TensorFlow)",
          flush=True)
    try:
        bundle = Bundle.load(args.bundle)
    except (BundleError, RuntimeUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for text in args.texts or EXAMPLES:
        print(f"  {text!r:32} -> {bundle.translate(text)}")
    print(f"next: python -m kit decode {args.bundle} 'your date here'")
    return 0
