"""`python -m kit demo`: the whole flow on the built-in data, in one command.

Train the `small` model on the built-in dates data (or resume it), export it to one
quantized LiteRT bundle with the verification table, decode a few dates with the
on-device runtime (numpy + LiteRT only), and draw two pictures beside the run: the
cross-attention of one example and the training curves. Running it again reuses what
is done. `--quick` does it all with a tiny model and a slice of the data.

The one module of export/ that calls into training, because the demo is every command
in a row: the train command's entry point, and the attention command's picture. Like
the rest of export, it reads the run through training/run_dir.py.
"""

import json
import sys
from pathlib import Path

from kit.commands import CommandParser, integer
from kit.runtime.recipes import RECIPES

EXAMPLES = (
    "Sun 29 Nov 2026",
    "november 3rd, 1999",
    "03.04.05",
    "the 1st of January 2000",
    "TUESDAY, 14 FEBRUARY 2045",
    "1969/07/20",
)


def build_parser():
    parser = CommandParser(
        "demo",
        description="Train on the built-in data (dates -> ISO 8601), export a verified "
                    "LiteRT bundle, and decode examples with the on-device runtime.")
    parser.add_argument("--run", default="runs/demo", help="run directory (default: %(default)s)")
    parser.add_argument("--bundle", default="bundles/demo",
                        help="bundle directory (default: %(default)s)")
    parser.add_argument("--recipe", default="dynamic_int8", choices=RECIPES,
                        help="quantization recipe (default: %(default)s)")
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "base"),
                        help="model size (default: %(default)s)")
    parser.add_argument("--epochs", action=integer(1), default=None,
                        help="training epochs (default: the train command's)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model on 10,000 pairs for 8 epochs, exported float32, "
                             "into runs/demo-quick and bundles/demo-quick unless given: "
                             "the whole flow in about two minutes, to see it work")
    parser.add_argument("texts", metavar="TEXT", nargs="*",
                        help="dates to decode at the end (default: a few examples)")
    return parser


def _existing_bundle_of(bundle, run):
    """True when `bundle` is a finished bundle exported from `run` by this version of the
    kit (a bundle of an older format is exported again)."""
    from kit.runtime import REPORT_JSON
    from kit.runtime.bundle_format import read_bundle_json

    try:
        read_bundle_json(bundle)  # its owner's checks: the format version among them
        report = json.loads((Path(bundle) / REPORT_JSON).read_text())  # export's own file
        return Path(report["source_run"]).resolve() == Path(run).resolve()
    except (OSError, ValueError, KeyError, TypeError):  # BundleError is a ValueError
        return False


QUICK = {"preset": "tiny", "epochs": 8, "limit": 10_000, "recipe": "float32",
         "run": "runs/demo-quick", "bundle": "bundles/demo-quick"}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from kit.layout import sibling

    options = sibling("training.options")
    TrainError, TrainOptions = options.TrainError, options.TrainOptions
    train = sibling("training.train").train

    limit = None
    if args.quick:
        # The quick flow's own defaults, where the user gave none.
        for name in ("preset", "recipe", "run", "bundle"):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, QUICK[name])
        args.epochs = args.epochs or QUICK["epochs"]
        limit = QUICK["limit"]
    # Greedy final metrics and no checkpoint averaging: the recipe the README's demo
    # figures were measured with.
    options = TrainOptions(data="default", out=args.run, preset=args.preset, limit=limit,
                           eval_samples=200 if args.quick else TrainOptions.eval_samples,
                           beam_size=1, average_checkpoints=0)
    if args.quick:  # the small preset's lengths, which the dates need
        options.max_source_length, options.max_target_length = 48, 16
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
        from .cli import main as export_main

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

    attention, curves = _pictures(args.run, (args.texts or EXAMPLES)[0])
    print(f"pictures: {attention} (which source characters each output character looked "
          f"at), {curves} (loss and token accuracy per epoch)")
    print("next:")
    print(f"  python -m kit decode {args.bundle} 'your date here'")
    print(f"  python -m kit decode {args.bundle} '12.4.88' --beam-size 4 --json")
    print(f"  python -m kit attention {args.run} '3 mars 1999' --kind decoder --out decoder.png")
    print(f"  python -m kit export {args.run} --recipe all --out bundles/all")
    print(f"  python -m kit evaluate {args.bundle} --data tsv:YOUR_FILE.tsv")
    print("  python -m kit train --data tsv:YOUR_FILE.tsv --out runs/mine")
    return 0


def _pictures(run, text):
    """The cross-attention picture of `text` and the training curves, beside the run."""
    from kit.layout import sibling
    from kit.plots import attention_figure, training_curves_figure

    attention_picture = sibling("training.attention").attention_picture
    rd = sibling("training.run_dir")

    run = Path(run)
    info = rd.read_run(run)
    picture = attention_picture(rd.load_keras(run / rd.KERAS_MODEL_FILE),
                                rd.load_tokenizers(run), text, "cross",
                                run_name=str(run))
    attention = run.parent / f"{run.name}-attention.png"
    attention_figure(picture.weights, picture.rows, picture.columns, picture.title,
                     attention)
    curves = run.parent / f"{run.name}-training.png"
    training_curves_figure(info.history, f"{run}: training curves", curves)
    return attention, curves
