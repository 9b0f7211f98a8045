"""`python -m kit evaluate RUN_DIR --data tsv:PATH`: a run's Keras model on a TSV file.

(A bundle directory is evaluated by `kit.runtime.evaluate`, without TensorFlow.)
"""

from kit.commands import run_command
from kit.evaluation import EvaluationError, build_parser, check_args, run


def main(argv=None):
    args = build_parser().parse_args(argv)
    from kit.tokenizer import TokenizerError, load_tokenizer
    from training.run_dir import KERAS_MODEL_FILE, TOKENIZER_FILE, RunDirError, load_keras, read_run

    def body():
        info = read_run(args.model)
        references = check_args(args)
        tokenizer = load_tokenizer(info.path / TOKENIZER_FILE)
        from training.evaluate import translate

        model = load_keras(info.path / KERAS_MODEL_FILE)
        return run(args, references,
                   lambda sources: translate(model, tokenizer, sources, args.beam_size,
                                             args.length_penalty),
                   f"the Keras model of {info.path}")

    return run_command(body, (EvaluationError, RunDirError, TokenizerError))
