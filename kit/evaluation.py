"""`python -m kit evaluate`: decode every source of a user's TSV file and score it.

What both kinds of model share (a run's Keras model, a bundle on the device): reading
the file, grouping alternative references, decoding, scoring, writing predictions. The
caller brings a `translate(sources) -> outputs` function. Neither TensorFlow nor Keras.

The file is read whole, with no split (it is the user's own test set). Lines with the
same source are alternative right answers: the source is decoded once, and its output
is exact when it equals any of them.
"""

import os
import sys
import time
from dataclasses import dataclass, field

from kit.commands import MAX_BEAM_SIZE, MAX_LENGTH_PENALTY, CommandParser, integer, number
from kit.files import atomic_write
from kit.metrics import corpus_metrics, format_metrics
from kit.tsv import TsvError, read_tsv, spaces_warning

# What marks a run directory (training/run_dir.py) and a bundle directory
# (kit/runtime/bundle_format.py): `--output` writes no file inside either.
MODEL_DIRECTORY_FILES = ("run.json", "bundle.json")


class EvaluationError(ValueError):
    """The data or options of an evaluation are unusable; one line for the user."""


@dataclass
class References:
    """A TSV file's sources (each once, in file order) with their references."""

    sources: list
    references: list  # per source: the list of its targets, in file order
    lines: int  # pairs read
    bad_lines: list = field(default_factory=list)  # 1-based numbers of malformed lines
    warning: str | None = None  # about the file's fields (`kit.tsv.spaces_warning`)


def read_references(spec):
    """Reads `tsv:PATH` (UTF-8, `source<TAB>target` a line) into `References`.

    Raises EvaluationError for a spec that is not `tsv:`, a missing or unreadable file,
    a file that is not UTF-8 (naming the line), or one without a single valid line.
    """
    if not isinstance(spec, str) or not spec.startswith("tsv:") or len(spec) == 4:
        raise EvaluationError(f"--data must be tsv:PATH (one source<TAB>target a line). "
                              f"Received: {spec!r}")
    try:
        pairs, bad = read_tsv(spec, os.path.expanduser(spec[4:]))
    except TsvError as error:
        raise EvaluationError(str(error)) from None
    grouped = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    if not grouped:
        raise EvaluationError(f"{spec}: no source<TAB>target line"
                              + (f" ({len(bad)} malformed, first at line {bad[0]})" if bad
                                 else ""))
    return References(list(grouped), list(grouped.values()), len(pairs), bad,
                      spaces_warning(pairs, spec))


def evaluate(translate, references, limit=None, batch_size=64, progress=None):
    """Decodes the sources with `translate(list of str) -> list of str` and scores them.

    Returns:
        (metrics dict, outputs list, seconds spent decoding).
    """
    sources = references.sources[:limit]
    outputs = []
    started = time.monotonic()
    for start in range(0, len(sources), batch_size):
        outputs += translate(sources[start:start + batch_size])
        if progress:
            progress(len(outputs), len(sources))
    seconds = time.monotonic() - started
    metrics = corpus_metrics(outputs, references.references[:len(sources)])
    return metrics, outputs, seconds


def write_predictions(path, sources, outputs, references):
    """`source<TAB>output<TAB>first reference<TAB>exact (1/0)` a line, atomically."""
    def clean(text):
        return text.replace("\t", " ").replace("\n", " ")

    atomic_write(path, "".join(
        f"{clean(s)}\t{clean(o)}\t{clean(refs[0])}\t{int(o in refs)}\n"
        for s, o, refs in zip(sources, outputs, references)))


def build_parser():
    parser = CommandParser(
        "evaluate",
        description="Decode every source of a TSV file with a run's Keras model or a "
                    "bundle (no TensorFlow needed for a bundle) and print exact match, "
                    "character and word error rates, BLEU and chrF. Lines with the same "
                    "source are alternative right answers.")
    parser.add_argument("model", metavar="RUN_DIR|BUNDLE_DIR",
                        help="a run directory (train) or a bundle directory (export)")
    parser.add_argument("--data", required=True, metavar="tsv:PATH",
                        help="UTF-8, one source<TAB>target per line; every line is used")
    parser.add_argument("--limit", action=integer(1, 10**9), default=None, metavar="N",
                        help="decode only the first N distinct sources")
    parser.add_argument("--output", default=None, metavar="PRED.tsv",
                        help="also write source, output, reference, exact per line")
    parser.add_argument("--beam-size", action=integer(1, MAX_BEAM_SIZE), default=1, metavar="K",
                        help=f"beam search over K beams, 1 to {MAX_BEAM_SIZE} (default 1: "
                             "greedy)")
    parser.add_argument("--length-penalty", default=1.0, metavar="A",
                        action=number(-MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY),
                        help="beam search ranks log-probability / length^A, A from "
                             f"{-MAX_LENGTH_PENALTY:g} to {MAX_LENGTH_PENALTY:g} (default 1)")
    return parser


def check_args(args):
    """The files of the options, checked before any model is loaded (the parser has
    checked the numbers): `References`."""
    if args.output and os.path.isdir(args.output):
        raise EvaluationError(f"--output {args.output} is a directory, expected a file name")
    if args.output:
        check_output(args.output, args.data, args.model)
    return read_references(args.data)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them missing or unreadable: not the same file
        return False


def _files_under(directory):
    for root, _, names in os.walk(directory):
        for name in names:
            yield os.path.join(root, name)


def check_output(output, data_spec, model):
    """Refuses an `--output` that would replace an input of the command or a file of a
    run or bundle directory (which export and evaluate read later), before any model is
    loaded. Links are resolved and, where the file exists, compared by inode."""
    refused = f"--output {output}"
    real = os.path.realpath(output)
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        raise EvaluationError(f"{refused}: the directory {os.path.dirname(output) or '.'} "
                              "does not exist")
    if not os.path.exists(real) and not os.access(parent, os.W_OK):
        raise EvaluationError(f"{refused}: cannot create a file in "
                              f"{os.path.dirname(output) or '.'} (no permission)")
    data = os.path.expanduser(data_spec[4:]) if str(data_spec).startswith("tsv:") else None
    if data and (real == os.path.realpath(data) or _same_file(output, data)):
        raise EvaluationError(f"{refused} is the --data file; choose a new file for the "
                              "predictions")
    model_dir = os.path.realpath(model)
    if (real == model_dir or real.startswith(model_dir.rstrip(os.sep) + os.sep)
            or (os.path.exists(output)
                and any(_same_file(output, name) for name in _files_under(model_dir)))):
        raise EvaluationError(f"{refused} is inside {model}, the model being evaluated; "
                              "choose a new file outside it")
    directory = os.path.dirname(real)
    while True:
        if any(os.path.isfile(os.path.join(directory, name))
               for name in MODEL_DIRECTORY_FILES):
            raise EvaluationError(f"{refused} is inside the run or bundle directory "
                                  f"{directory}; choose a new file outside it")
        parent = os.path.dirname(directory)
        if parent == directory:
            return
        directory = parent


def decoding_text(args):
    """'greedy decoding' or 'beam search (4 beams, length penalty 1)'."""
    if args.beam_size == 1:
        return "greedy decoding"
    return (f"beam search ({args.beam_size} beams, length penalty "
            f"{args.length_penalty:g})")


# Fewer distinct sources than this and one output more or less moves exact match by
# over 3 points: the scores are printed, with a warning that they say little.
FEW_SOURCES = 30


def coverage_warnings(sources, tokenizer, source_length):
    """Warning lines about what the model will miss of `sources`, as `decode` warns per
    input: sources with units (characters, words) it never saw, and sources longer
    than the S tokens it reads (cut)."""
    unknown = sum(1 for source in sources if tokenizer.unknown_count(source))
    cut = sum(1 for source in sources if len(tokenizer.encode(source)) > source_length)
    lines = []
    if unknown:
        lines.append(f"warning: {unknown} of {len(sources)} sources have characters (or "
                     "words) the model never saw; they read as unknown")
    if cut:
        lines.append(f"warning: {cut} of {len(sources)} sources are longer than the "
                     f"{source_length} tokens the model reads; the rest of each is cut")
    return lines


def run(args, references, translate, describe, source_tokenizer=None, source_length=None):
    """The command's body, once the caller has loaded its model: returns the exit code.

    Args:
        args: from `build_parser`.
        references: from `check_args`.
        translate: list of sources -> list of outputs.
        describe: what decodes, for the first line.
        source_tokenizer, source_length: the model's, for the warnings about unseen
            characters and cut sources (none without them).
    """
    sources = references.sources[:args.limit]
    count = len(sources)
    print(f"evaluating {describe} with {decoding_text(args)} on {count} distinct sources "
          f"({references.lines} pairs) of {args.data}", file=sys.stderr)
    if references.bad_lines:
        print(f"skipped {len(references.bad_lines)} malformed line(s), first at line "
              f"{references.bad_lines[0]}", file=sys.stderr)
    if references.warning:
        print(references.warning, file=sys.stderr)
    if count < FEW_SOURCES:
        print(f"warning: only {count} distinct source{'s' * (count != 1)}: each one moves "
              f"exact match by {100 / max(count, 1):.0f} points, so these scores say little",
              file=sys.stderr)
    if source_tokenizer is not None:
        for line in coverage_warnings(sources, source_tokenizer, source_length):
            print(line, file=sys.stderr)

    def progress(done, total):
        if sys.stderr.isatty():
            print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True)

    metrics, outputs, seconds = evaluate(translate, references, args.limit,
                                         progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.output:
        write_predictions(args.output, references.sources, outputs, references.references)
    print(format_metrics({**metrics, "sources": count}))
    print(f"{1000.0 * seconds / max(count, 1):.1f} ms per source", file=sys.stderr)
    return 0
