"""`python -m kit decode BUNDLE_DIR [TEXT ...]`: decoding with a bundle: greedy, beam
search or sampling (`kit.decoding`).

Needs numpy and a LiteRT interpreter only (no TensorFlow, no Keras): this is the
command to run on the device. With no TEXT it reads one input per line of standard
input and writes one output per line, so it composes with other programs: every input
gets exactly one output line, also one that could not be decoded (an empty line), so
that line N of the output always belongs to input N.
"""

import argparse
import errno
import json
import os
import sys
import time

from kit.commands import (
    MAX_BEAM_SIZE,
    MAX_LENGTH_PENALTY,
    CommandParser,
    integer,
    number,
)
from kit.decoding import NonFiniteLogits, TopK, TopP
from kit.runtime.bundle import Bundle
from kit.runtime.bundle_format import BundleError
from kit.runtime.interpreter import RuntimeUnavailable, max_threads

EPILOG = """\
Every input gives exactly one output line, so outputs stay aligned with inputs: empty or
whitespace-only input gives an empty line (the model is not run), and so does an input
that is refused: a standard input line that is not UTF-8, or, with --strict, one with
characters the model never saw or longer than the model reads. Each refused input gets
one "error:" line on stderr naming its line (or argument) number, the others are still
decoded, and the exit status is 1 at the end. Without --strict, unseen characters and
inputs cut to the model's source length get one "warning:" line each. Line breaks in an
output are written as spaces. Exit status: 0 all decoded, 1 an input or an option's
value refused or the bundle unusable, 2 a command line that cannot be read."""


def build_parser():
    parser = CommandParser(
        "decode",
        description="Decode text with an exported bundle (greedy, with the KV cache). "
                    "Without TEXT, reads one input per line of standard input (UTF-8).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", metavar="BUNDLE_DIR", help="a directory made by export")
    parser.add_argument("texts", metavar="TEXT", nargs="*", help="inputs to decode")
    parser.add_argument("--threads", action=integer(1, max_threads()), default=None,
                        metavar="N",
                        help=f"interpreter CPU threads, 1 to {max_threads()} (the CPUs of "
                             "this machine; default: LiteRT's choice)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse (instead of warning about) inputs with characters "
                             "the model never saw or longer than it reads")
    choose = parser.add_argument_group("how the next token is chosen")
    choose.add_argument("--beam-size", action=integer(1, MAX_BEAM_SIZE), default=1, metavar="K",
                        help="beam search over K beams (default 1: greedy or sampling)")
    choose.add_argument("--length-penalty", default=1.0, metavar="A",
                        action=number(-MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY),
                        help="beam search ranks log-probability / length^A (default 1)")
    choose.add_argument("--sampling", choices=("greedy", "top_k", "top_p"), default="greedy",
                        help="greedy (default), or a random draw among the k likeliest "
                             "tokens (top_k) or the likeliest tokens holding p of the "
                             "probability (top_p)")
    choose.add_argument("--top-k", action=integer(1, 1 << 20), default=10, metavar="K",
                        help="for --sampling top_k (default 10)")
    choose.add_argument("--top-p", action=number(1e-6, 1.0), default=0.9, metavar="P",
                        help="for --sampling top_p, in (0, 1] (default 0.9)")
    choose.add_argument("--temperature", action=number(1e-3, 100.0), default=1.0,
                        metavar="T", help="for sampling: below 1 sharper, above 1 flatter")
    choose.add_argument("--seed", action=integer(0, 2**32 - 1), default=None,
                        help="for sampling: the same seed gives the same outputs")
    choose.add_argument("--max-new-tokens", action=integer(1, 1 << 20), default=None,
                        metavar="N", help="stop after N tokens (default and most: the "
                                          "bundle's target_length - 1)")
    parser.add_argument("--batch-size", action=integer(1, 1 << 16), default=1, metavar="B",
                        help="greedy only: decode up to B inputs at once through the "
                             "bundle's batch signatures (their outputs are written once "
                             "all B are done; default 1: each input as it comes)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per input instead of the text: text, ids, "
                             "score (log-probability), ms_per_token, and for beam search "
                             "every beam")
    return parser


class _OutputFailed(Exception):
    """Writing to standard output failed (a closed pipe, a full disk)."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _inputs(texts):
    """(label, text, problem) per input; `problem` says why `text` is None."""
    if texts:
        for number, text in enumerate(texts, 1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # undecodable argv bytes arrive as lone surrogates
                yield f"argument {number}", None, "is not UTF-8 text"
            else:
                yield f"argument {number}", text, None
        return
    if sys.stdin is None:
        raise OSError(errno.EBADF, "standard input is closed")
    # Bytes, decoded strictly line by line: the locale's decoding may hide bad input,
    # and one bad byte must cost its own line only.
    for number, raw in enumerate(sys.stdin.buffer, 1):
        raw = raw.rstrip(b"\r\n")
        if number == 1 and raw.startswith(_BOM):  # an editor's mark, not text (as evaluate)
            raw = raw[len(_BOM):]
        try:
            yield f"line {number}", raw.decode("utf-8"), None
        except UnicodeDecodeError as error:
            yield (f"line {number}", None, f"is not UTF-8 text (byte 0x{raw[error.start]:02x} "
                                           f"at offset {error.start})")


_BOM = "\ufeff".encode("utf-8")


def _json(value):
    """One JSON line: UTF-8 as is, but U+2028 and U+2029 escaped (JavaScript and many
    line readers take them for line breaks) and never NaN (not JSON)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _decode(bundle, label, text, args):
    """The output line for one input, and whether it was decoded (not refused)."""
    checked = _check(bundle, label, text, args)
    return checked if checked is not None else (_choose(bundle, label, text, args), True)


def _check(bundle, label, text, args):
    """None for an input to decode (after its warnings), else its (line, decoded): an
    empty input's line, or a refused one's."""
    if not text.strip():
        return (_json({"input": text, "text": "", "ids": []}) if args.json else ""), True
    unknown, length = bundle.source_report(text)
    problems = []
    if unknown:
        seen = bundle.source_tokenizer.unknown_characters(text)
        shown = ", ".join(map(repr, seen[:3])) + (", ..." if len(seen) > 3 else "")
        unit = "word" if bundle.source_tokenizer.TYPE == "word" else "character"
        problems.append(f"{unknown} {unit}{'s' if unknown > 1 else ''} the model never "
                        f"saw ({shown})")
    if length > bundle.source_length:
        problems.append(f"{length} tokens long, the model reads {bundle.source_length}: "
                        "the rest is cut")
    if problems and args.strict:
        _say(f"error: {_where(label)}: {'; '.join(problems)}; not decoded (--strict)")
        return "", False
    if problems:
        _say(f"warning: {_where(label)}: {'; '.join(problems)}; decoded anyway")
    return None


def _decode_batch(bundle, entries, args):
    """Decodes the entries still without a line ([label, text, None]) in one
    `greedy_batch`, then writes every entry's line in order."""
    waiting = [entry for entry in entries if entry[2] is None]
    generated = bundle.greedy_batch([bundle.source_ids(entry[1]) for entry in waiting],
                                    max_new_tokens=_max_new_tokens(bundle, args))
    for entry, ids in zip(waiting, generated):
        if not ids or ids[-1] != bundle.eos_id:
            _say(f"warning: {_where(entry[0])}: no end of output after {len(ids)} tokens; "
                 "the output may be cut (--max-new-tokens, or the bundle's target length)")
        entry[2] = bundle.text_of(ids)
    for entry in entries:
        _write(entry[2])
    entries.clear()


def _choose(bundle, label, text, args):
    """The output line for `text` under the decoding options."""
    sampler = None
    if args.sampling == "top_k":
        sampler = TopK(args.top_k, args.temperature, args.seed)
    elif args.sampling == "top_p":
        sampler = TopP(args.top_p, args.temperature, args.seed)
    started = time.perf_counter()
    hypotheses = bundle.decode_ids(bundle.source_ids(text), beam_size=args.beam_size,
                                   sampler=sampler, length_penalty=args.length_penalty,
                                   max_new_tokens=_max_new_tokens(bundle, args))
    seconds = time.perf_counter() - started
    best = hypotheses[0]
    if not best.finished:
        _say(f"warning: {_where(label)}: no end of output after {len(best.ids)} tokens; "
             "the output may be cut (--max-new-tokens, or the bundle's target length)")
    if not args.json:
        return bundle.text_of(best.ids)

    def described(hypothesis):
        return {"text": bundle.text_of(hypothesis.ids), "ids": hypothesis.ids,
                "score": round(hypothesis.score, 6), "log_prob": round(hypothesis.log_prob, 6),
                "finished": hypothesis.finished}

    result = {"input": text, **described(best),
              "ms_per_token": round(1000.0 * seconds / max(len(best.ids), 1), 4)}
    if args.beam_size > 1:
        result["beams"] = [described(h) for h in hypotheses]
    return _json(result)


def _max_new_tokens(bundle, args):
    """--max-new-tokens, at most what the bundle's cache holds."""
    limit = bundle.target_length - 1
    if args.max_new_tokens is not None and args.max_new_tokens > limit:
        raise _Refused(f"--max-new-tokens {args.max_new_tokens} is more than this bundle "
                       f"can make (target_length - 1 = {limit})")
    return args.max_new_tokens


class _Refused(Exception):
    """An option that only the loaded bundle can refuse: one line, exit 1."""


def _where(label):
    return label if label.startswith("argument") else f"standard input {label}"


def _say(message):
    if sys.stderr is not None:  # print(file=None) would write to stdout instead
        print(message, file=sys.stderr, flush=True)


def _write(line):
    # A line break inside an output would shift every later output off its input.
    line = line.replace("\r", " ").replace("\n", " ")
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except OSError as error:
        raise _OutputFailed(error) from None


def _silence_stdout():
    """Points standard output at /dev/null, so that Python's own flush at exit does not
    fail a second time on the closed pipe or full disk, with a message of its own."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (e.g. captured by a test)
        pass


def main(argv=None):
    """The command; returns the exit code (0 all decoded, 1 a refusal); a command line
    it cannot use exits as `kit.commands` says."""
    parser = build_parser()
    # Intermixed: options may follow the TEXTs (`decode B "x" --strict`).
    args = parser.parse_intermixed_args(argv)
    if args.beam_size > 1 and args.sampling != "greedy":
        parser.error("--beam-size and --sampling are two ways to choose: use one")
    if args.batch_size > 1 and (args.beam_size > 1 or args.sampling != "greedy" or args.json):
        parser.error("--batch-size decodes greedily and gives texts only: use it without "
                     "--beam-size, --sampling and --json")
    if hasattr(sys.stdout, "reconfigure"):
        # Outputs are UTF-8 like the inputs, whatever the locale; a lone surrogate,
        # which UTF-8 cannot hold, must not end the stream.
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130


def _run(args):
    try:
        bundle = Bundle.load(args.bundle, num_threads=args.threads)
    except (BundleError, RuntimeUnavailable) as error:
        _say(f"error: {error}")
        return 1
    refused = 0
    for ignored in _ignored_options(args):
        _say(f"warning: {ignored}")
    try:
        _max_new_tokens(bundle, args)
    except _Refused as error:
        _say(f"error: {error}")
        return 1
    waiting = []  # with --batch-size: [label, text, line, or None until decoded]
    pending = 0  # how many of them wait for the model
    try:
        for label, text, problem in _inputs(args.texts):
            if problem is not None:
                _say(f"error: {_where(label)} {problem}; its output line is empty")
                line, decoded = "", False
            elif args.batch_size > 1:
                line, decoded = _check(bundle, label, text, args) or (None, True)
            else:
                line, decoded = _decode(bundle, label, text, args)
            refused += not decoded
            if args.batch_size == 1:
                _write(line)
                continue
            waiting.append([label, text, line])
            pending += line is None
            if pending == args.batch_size:
                _decode_batch(bundle, waiting, args)
                pending = 0
        if waiting:
            _decode_batch(bundle, waiting, args)
    except _OutputFailed as failed:
        _silence_stdout()
        if failed.error.errno == errno.EPIPE:
            return 0  # the reader went away (e.g. `| head`): not an error of ours
        _say(f"error: cannot write the output: {failed.error.strerror or failed.error}")
        return 1
    except OSError as error:  # reading standard input (a directory, a closed descriptor)
        _say(f"error: cannot read standard input: {error.strerror or error}")
        return 1
    except NonFiniteLogits as error:  # every later input would be garbage too
        _say(f"error: {error}; stopped")
        return 1
    return 1 if refused else 0  # each refusal already has its error line


# The decoding options that only one way of choosing reads, and which way reads them.
_READ_BY = {"top_k": "--sampling top_k", "top_p": "--sampling top_p",
            "temperature": "--sampling top_k or top_p", "seed": "--sampling top_k or top_p",
            "length_penalty": "beam search (--beam-size 2 or more)"}


def _ignored_options(args):
    """A warning per option the user set that the chosen way of decoding does not read
    (a --top-p without --sampling top_p would otherwise be silently ignored)."""
    if args.beam_size > 1:
        way, reads = f"--beam-size {args.beam_size}", {"length_penalty"}
    else:
        way = f"--sampling {args.sampling}"
        reads = {"greedy": set(), "top_k": {"top_k", "temperature", "seed"},
                 "top_p": {"top_p", "temperature", "seed"}}[args.sampling]
    parser = build_parser()
    for name, read_by in _READ_BY.items():
        if getattr(args, name) != parser.get_default(name) and name not in reads:
            yield (f"--{name.replace('_', '-')} is ignored with {way}: only {read_by} "
                   "reads it")
