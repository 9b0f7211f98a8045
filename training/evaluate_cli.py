"""`python -m kit evaluate RUN_DIR --data tsv:PATH`: a run's Keras model on a TSV file.

(A bundle directory is evaluated by `kit.runtime.evaluate`, without TensorFlow.)
"""

import sys

from kit.evaluation import EvaluationError, build_parser, check_args, run


def main(argv=None):
    args = build_parser().parse_args(argv)
    from kit.tokenizer import TokenizerError, load_tokenizer
    from training.run_dir import KERAS_MODEL_FILE, TOKENIZER_FILE, RunDirError, load_keras, read_run

    try:
        info = read_run(args.model)
        references = check_args(args)
        try:
            tokenizer = load_tokenizer(info.path / TOKENIZER_FILE)
        except TokenizerError as error:
            raise EvaluationError(str(error)) from None
        from training.evaluate import greedy_translate

        model = load_keras(info.path / KERAS_MODEL_FILE)
        return run(args, references,
                   lambda sources: greedy_translate(model, tokenizer, sources),
                   f"the Keras model of {info.path}")
    except (EvaluationError, RunDirError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
