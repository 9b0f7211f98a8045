"""`python -m kit evaluate BUNDLE_DIR --data tsv:PATH`: a bundle on a TSV file, through
the device runtime (numpy and LiteRT; no TensorFlow, no Keras)."""

import sys

from kit.evaluation import EvaluationError, build_parser, check_args, run


def main(argv=None):
    args = build_parser().parse_args(argv)
    from kit.runtime import Bundle, BundleError, RuntimeUnavailable

    try:
        references = check_args(args)
        bundle = Bundle.load(args.model)
        return run(args, references,
                   lambda sources: [bundle.translate(source) for source in sources],
                   f"the {bundle.recipe} bundle {args.model}")
    except (EvaluationError, BundleError, RuntimeUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
