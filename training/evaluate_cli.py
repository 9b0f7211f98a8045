"""`python -m kit evaluate RUN_DIR --data tsv:PATH`: a run's Keras model on a TSV file.

(A bundle directory is evaluated by `kit.runtime.evaluate`, without TensorFlow.)
"""

from kit.commands import run_command
from kit.evaluation import EvaluationError, build_parser, check_args, run


def main(argv=None):
    args = build_parser().parse_args(argv)
    from . import run_dir as rd

    def body():
        info = rd.read_run(args.model)
        references = check_args(args)
        tokenizers = rd.load_tokenizers(info.path)
        from .evaluate import translate

        model = rd.load_keras(info.path / rd.KERAS_MODEL_FILE)
        return run(args, references,
                   lambda sources: translate(model, tokenizers, sources, args.beam_size,
                                             args.length_penalty),
                   f"the Keras model of {info.path}", tokenizers.source,
                   info.config["max_source_length"])

    return run_command(body, (EvaluationError, rd.RunDirError))
