"""`python -m kit train`: the command-line face of training.train."""

import argparse
import os
import sys

from kit.commands import CommandParser, integer, number

from .choices import PRESET_CHOICES, TOKENIZERS
from .distribute import STRATEGIES
from .options import PRECISIONS, LostWorkerError, TrainError, TrainOptions

DEFAULTS = TrainOptions()


def _epochs(text):
    """'auto' or an integer, which `check_options` bounds."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or auto, got {text!r}") from None


def build_parser():
    # The numbers are bounded by `check_options`, not here: it refuses a bad one in the
    # rule's words and exit code for this command and for Python callers alike (the
    # demo), from one table of bounds.
    parser = CommandParser(
        "train",
        description="Train an encoder-decoder transformer into a resumable run directory. "
                    "Run the same command again after an interruption to resume. What is "
                    "not given (tokenizer, model size, lengths, epochs) is chosen from the "
                    "training data, and the command prints what it chose and why.")
    parser.add_argument("--data", default=DEFAULTS.data,
                        help="default (built-in dates -> ISO 8601), tsv:PATH "
                             "(source<TAB>target per line) or tfds:NAME[/CONFIG] "
                             "(default: %(default)s)")
    parser.add_argument("--out", required=True, help="the run directory to create or resume")
    parser.add_argument("--preset", default=DEFAULTS.preset,
                        metavar="{" + ",".join(PRESET_CHOICES) + "}",
                        help="model size; auto: small for the built-in data, else by the "
                             "training pairs and target tokens: base from 30,000 pairs and "
                             "150,000 tokens, large from 150,000 pairs and 2,000,000 tokens, "
                             "else small (default: %(default)s)")
    parser.add_argument("--epochs", type=_epochs, default=DEFAULTS.epochs,
                        help="total epochs, or auto: 8 for the built-in data, else until the "
                             "validation loss has not improved for --patience epochs "
                             "(default: %(default)s)")
    parser.add_argument("--patience", action=integer(), default=DEFAULTS.patience,
                        help="--epochs auto: epochs without a lower validation loss before "
                             "stopping (default: %(default)s)")
    parser.add_argument("--max-epochs", action=integer(), default=DEFAULTS.max_epochs,
                        help="--epochs auto: the most epochs (default: %(default)s)")
    choices = "{" + ",".join(TOKENIZERS) + "}"
    parser.add_argument("--source-tokenizer", default=None, metavar=choices,
                        help="the sources' tokenizer: char (one token per character), word "
                             "(one per whitespace-separated symbol of a closed set, such as "
                             "phones) or sentencepiece (subwords); auto: chosen from the "
                             "sources' median words and characters a text and their "
                             "distinct words (training/choices.py) (default: --tokenizer)")
    parser.add_argument("--target-tokenizer", default=None, metavar=choices,
                        help="the targets' tokenizer, chosen alike (default: --tokenizer)")
    parser.add_argument("--tokenizer", default="auto", metavar=choices,
                        help="both sides' tokenizer, each with its own vocabulary "
                             "(default: %(default)s)")
    parser.add_argument("--vocab-size", action=integer(), default=None,
                        help="the most tokens of each side, specials included (default: "
                             "every character or word; sentencepiece: a quarter of the "
                             "side's distinct words, 256 to 8000)")
    parser.add_argument("--batch-size", action=integer(), default=DEFAULTS.batch_size,
                        help="sentences per batch (default: %(default)s)")
    parser.add_argument("--precision", default=DEFAULTS.precision, choices=PRECISIONS,
                        help="auto: mixed_float16 when a GPU is visible, else float32 "
                             "(default: %(default)s)")
    parser.add_argument("--seed", action=integer(), default=DEFAULTS.seed,
                        help="data split, shuffling and initialisation (default: %(default)s)")
    parser.add_argument("--learning-rate", action=number(), default=None,
                        help="a constant learning rate instead of the paper's warm-up schedule")
    parser.add_argument("--warmup-steps", action=integer(), default=DEFAULTS.warmup_steps,
                        help="warm-up steps of the schedule (default: one epoch of steps, "
                             "within 100-4000; the built-in data: 1000)")
    parser.add_argument("--label-smoothing", action=number(), default=DEFAULTS.label_smoothing,
                        help="(default: %(default)s)")
    parser.add_argument("--max-source-length", action=integer(), default=None,
                        help="S, source tokens kept (default: from the training data, "
                             "99.9%% of sources whole; built-in data: the preset's)")
    parser.add_argument("--max-target-length", action=integer(), default=None,
                        help="T, target positions incl. BOS (default: from the training "
                             "data; built-in data: the preset's)")
    parser.add_argument("--limit", action=integer(), default=None,
                        help="use at most this many pairs per split")
    parser.add_argument("--strict", action="store_true",
                        help="fail on malformed TSV lines instead of skipping them")
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile the train step with XLA")
    parser.add_argument("--strategy", default=DEFAULTS.strategy, choices=STRATEGIES,
                        help="one_device; mirrored (all local GPUs); multi_worker (the "
                             "cluster in TF_CONFIG; only the chief writes --out); auto: "
                             "multi_worker when TF_CONFIG names several workers, mirrored "
                             "when several GPUs are visible, else one_device. --batch-size "
                             "is the global batch on every strategy (default: %(default)s)")
    parser.add_argument("--worker-timeout", action=number(), default=DEFAULTS.worker_timeout,
                        metavar="SECONDS",
                        help="multi_worker: how long to wait for every worker of TF_CONFIG "
                             "to connect before giving up (default: %(default)g)")
    parser.add_argument("--eval-samples", action=integer(), default=DEFAULTS.eval_samples,
                        help="sentences decoded for the final metrics (default: %(default)s)")
    parser.add_argument("--accept-trivial", action="store_true",
                        help="exit 0 even when the best epoch is no better than the trivial "
                             "baselines (most frequent token, token frequencies, one "
                             "constant output); the warnings are still printed")
    parser.add_argument("--beam-size", action=integer(), default=DEFAULTS.beam_size, metavar="K",
                        help="beams of the final metrics' decoding, 1 to 64; 1 is greedy "
                             "(default: %(default)s)")
    parser.add_argument("--average-checkpoints", action=integer(),
                        default=DEFAULTS.average_checkpoints, metavar="K",
                        help="average the weights of the last K epochs into model.keras "
                             "when that lowers the validation loss; 0 turns it off "
                             "(default: %(default)s)")
    return parser


def options_from_args(args):
    return TrainOptions(
        data=args.data, out=args.out, preset=args.preset, epochs=args.epochs,
        patience=args.patience, max_epochs=args.max_epochs,
        source_tokenizer=args.source_tokenizer or args.tokenizer,
        target_tokenizer=args.target_tokenizer or args.tokenizer,
        vocab_size=args.vocab_size, batch_size=args.batch_size, precision=args.precision,
        seed=args.seed,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        label_smoothing=args.label_smoothing, max_source_length=args.max_source_length,
        max_target_length=args.max_target_length, limit=args.limit, strict=args.strict,
        jit_compile=args.jit_compile, eval_samples=args.eval_samples, strategy=args.strategy,
        worker_timeout=args.worker_timeout, accept_trivial=args.accept_trivial,
        beam_size=args.beam_size, average_checkpoints=args.average_checkpoints)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        from .train import train

        train(options_from_args(args))
    except LostWorkerError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # TensorFlow's collectives are left half-done: the interpreter's exit would run
        # their finalizers, which print tracebacks or wait on the lost peer.
        os._exit(1)
    except TrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the machine's refusal (a full disk, a read-only place)
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the same command again to resume {args.out} from its "
              "last completed epoch", file=sys.stderr)
        return 130
    return 0
