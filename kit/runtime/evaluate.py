"""`python -m kit evaluate BUNDLE_DIR --data tsv:PATH`: a bundle on a TSV file, through
the device runtime (numpy and LiteRT; no TensorFlow, no Keras)."""

from kit.commands import run_command
from kit.evaluation import EvaluationError, build_parser, check_args, run


def main(argv=None):
    args = build_parser().parse_args(argv)
    from kit.runtime import Bundle, BundleError, RuntimeUnavailable

    def body():
        references = check_args(args)
        bundle = Bundle.load(args.model)

        def translate(source):
            if args.beam_size == 1 or not source.strip():  # as `Bundle.translate`
                return bundle.translate(source)
            best = bundle.decode_ids(bundle.source_ids(source), beam_size=args.beam_size,
                                     length_penalty=args.length_penalty)[0]
            return bundle.text_of(best.ids)

        def translate_all(sources):
            if args.beam_size > 1:
                return [translate(source) for source in sources]
            return bundle.translate_batch(sources)  # greedy: through the batch pairs

        return run(args, references, translate_all,
                   f"the {bundle.recipe} bundle {args.model}",
                   bundle.source_tokenizer, bundle.source_length)

    return run_command(body, (EvaluationError, BundleError, RuntimeUnavailable))
