"""`python -m kit evaluate RUN_DIR --data tsv:PATH`: a run's Keras model on a TSV file.

(A bundle directory is evaluated by `kit.runtime.evaluate`, without TensorFlow.)
"""

import sys

from kit.evaluation import EvaluationError, build_parser, check_args, run


def main(argv=None):
    args = build_parser().parse_args(argv)
    from kit.tokenizer import TokenizerError, load_tokenizer
    from training.run_dir import KERAS_MODEL_FILE, TOKENIZER_FILE, RunDirError, read_run

    try:
        info = read_run(args.model)
        references = check_args(args)
        try:
            tokenizer = load_tokenizer(info.path / TOKENIZER_FILE)
        except TokenizerError as error:
            raise EvaluationError(str(error)) from None
        import keras

        import kit.models  # noqa: F401  (registers the kit's classes for loading)
        from training.evaluate import greedy_translate

        try:
            model = keras.saving.load_model(info.path / KERAS_MODEL_FILE, compile=False)
        except Exception as error:  # a damaged zip, a foreign file: one line for the user
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise EvaluationError(f"cannot load {info.path / KERAS_MODEL_FILE}: {first}") \
                from None
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
