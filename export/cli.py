"""`python -m kit export RUN_DIR --recipe RECIPE --out BUNDLE_DIR`: run dir -> bundle.

    --recipe float32|float16|dynamic_int8|int8   one bundle in BUNDLE_DIR
    --recipe all                                 BUNDLE_DIR/<recipe>/ for each recipe,
                                                 plus BUNDLE_DIR/report.json comparing them

Each bundle is verified against the Keras model before it is kept (see export/verify.py);
the comparison table is printed on stdout, progress on stderr. A bundle is built in a
temporary directory beside BUNDLE_DIR and renamed into place only when complete, so a
failure or Ctrl-C leaves nothing half-written.
"""

import contextlib
import errno
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from kit.commands import CommandParser, integer
from kit.files import as_umask_allows, write_json
from kit.runtime.recipes import RECIPES

RECIPE_CHOICES = (*RECIPES, "all")
DEFAULT_SAMPLES = 200


def build_parser():
    parser = CommandParser(
        "export",
        description="Convert a finished training run into a verified LiteRT bundle "
                    "(model.tflite with encode and decode_step signatures, tokenizers, "
                    "bundle.json, report.json).")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a finished run directory (python -m kit train --out ...)")
    parser.add_argument("--recipe", required=True, choices=RECIPE_CHOICES,
                        help="float32; float16 (half-size weights); dynamic_int8 (int8 "
                             "weights); int8 (full integer: int8 weights and activations, "
                             "calibrated on training data); all (each into its own "
                             "sub-directory, plus a comparison)")
    parser.add_argument("--out", required=True, metavar="BUNDLE_DIR",
                        help="the bundle directory to create")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace BUNDLE_DIR if it exists")
    parser.add_argument("--samples", action=integer(1), default=DEFAULT_SAMPLES, metavar="N",
                        help="held-out sources to verify on (default: %(default)s)")
    parser.add_argument("--batch-sizes", type=_sizes, default=None, metavar="B,B...",
                        help="the batches the file decodes at once: one signature pair "
                             "each, sharing the weights (default: 1,4,32; 1 is always "
                             "included)")
    parser.add_argument("--source-lengths", type=_sizes, default=None, metavar="N,N...",
                        help="source-length buckets: a signature pair per length and "
                             "batch, so that a short source pays for no padding (default: "
                             "S only; each pair adds about 100 KB on the base preset)")
    return parser


def _sizes(text):
    """'1,32' -> (1, 32) for --batch-sizes and --source-lengths."""
    import argparse

    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, "
                                         f"got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv=None):
    """The command; returns the exit code (0 done, 1 export failed); a command line it
    cannot use exits as `kit.commands` says."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from kit.layout import sibling
    from kit.runtime import BundleError, RuntimeUnavailable

    from .errors import ExportError

    RunDirError = sibling("training.run_dir").RunDirError

    try:
        report = export_run(args.run_dir, args.recipe, args.out, overwrite=args.overwrite,
                            samples=args.samples, batch_sizes=args.batch_sizes,
                            source_lengths=args.source_lengths)
    except (ExportError, BundleError, RuntimeUnavailable, RunDirError) as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"export: error: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("export: interrupted; no bundle written", file=sys.stderr)
        return 130
    from .verify import format_notes, format_table

    print(format_table(report["recipes"], report["metric"]))
    for line in format_notes(report["recipes"]):
        print(line)
    print(f"bundle{'s' if args.recipe == 'all' else ''} written to {args.out}")
    return 0


def progress(message):
    print(f"export: {message}", file=sys.stderr, flush=True)


def export_run(run_dir, recipe, out, overwrite=False, samples=DEFAULT_SAMPLES,
               progress=progress, batch_sizes=None, source_lengths=None):
    """Converts, verifies and writes the bundle(s); returns the comparison report.

    `batch_sizes` and `source_lengths` choose the file's signature pairs
    (`export.convert.choose_variants`; None: its defaults).

    Raises ExportError (one line) for every problem a user can fix.
    """
    from kit.layout import sibling

    from .errors import ExportError
    from .load import load_run

    rd = sibling("training.run_dir")

    out = Path(out)
    if recipe not in RECIPE_CHOICES:
        raise ExportError(f"unknown recipe {recipe!r}: expected one of "
                          f"{', '.join(RECIPE_CHOICES)}")
    try:
        info = rd.read_run(run_dir)  # a bad run dir fails before any progress line or TensorFlow
    except rd.RunDirError as error:
        raise ExportError(str(error)) from None
    empty_seen = _check_out(out, info.path, overwrite)
    recipes = list(RECIPES) if recipe == "all" else [recipe]
    try:
        pairs = rd.read_pairs(info.path / rd.TEST_SAMPLE)[:samples]
    except rd.RunDirError as error:
        raise ExportError(str(error)) from None
    if not pairs:
        raise ExportError(f"{info.path / rd.TEST_SAMPLE} holds no pairs to verify on")

    progress(f"loading {run_dir} and rebuilding the model in float32")
    loaded = load_run(info)

    from .convert import DEFAULT_BATCH_SIZES, choose_variants

    try:
        variants = choose_variants(loaded.config, batch_sizes or DEFAULT_BATCH_SIZES,
                                   source_lengths)
    except ValueError as error:
        raise ExportError(f"--batch-sizes/--source-lengths: {error}") from None
    # float32 always included
    exported = export_model(loaded, recipes, progress=progress, variants=variants)

    from .verify import keras_reference

    progress(f"decoding {len(pairs)} held-out sources with the Keras model (the reference)")
    reference = keras_reference(loaded.model, loaded.tokenizers, pairs, loaded.info.metric)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        as_umask_allows(staging, 0o777)  # mkdtemp makes it owner-only
        rows = []
        for name in recipes:
            directory = staging if recipe != "all" else staging / name
            rows.append(_write_bundle(directory, name, exported[name],
                                      len(exported["float32"].content), loaded, reference,
                                      progress))
        report = {"format_version": 1, "metric": loaded.info.metric,
                  "source_run": str(loaded.info.path), "sentences": len(pairs),
                  "machine": _machine(), "recipes": rows}
        if recipe == "all":
            write_json(staging / "report.json", report)
        _replace(staging, out, overwrite, empty_seen)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def export_model(loaded, recipes, calibration_sources=200, max_decode_samples=1000,
                 progress=progress, variants=None):
    """Converts a loaded run under each recipe; returns {recipe: `export.convert.Exported`}.

    float32 is converted whether asked for or not: it is the size every recipe is
    compared with, and the file the int8 recipe measures attention scores in. The
    SavedModels are written into a temporary directory and removed afterwards.
    `variants`: the (batch, source length) signature pairs (`export.convert.
    choose_variants`); None: its defaults.
    """
    from .convert import (
        RECIPE_NOTES,
        Exported,
        choose_variants,
        convert,
        signature_names,
        write_saved_model,
    )
    from .int8 import export_int8

    variants = variants or choose_variants(loaded.config)
    names = signature_names(loaded.config, variants)
    exported = {}
    with tempfile.TemporaryDirectory(prefix="kit-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        progress(f"writing the float32 SavedModel ({len(names)} signatures: "
                 + ", ".join(f"batch {b} x source {s}" for b, s in variants) + ")")
        write_saved_model(loaded.model, saved_model, variants)
        for recipe in dict.fromkeys(["float32", *recipes]):
            if recipe != "int8":
                progress(f"converting: {recipe}")
                exported[recipe] = Exported(convert(saved_model, recipe, signatures=names),
                                            loaded.config, {"summary": RECIPE_NOTES[recipe]},
                                            variants)
        if "int8" in recipes:
            # The (1, S) pair only: each other int8 pair was calibrated on its own
            # inputs (91% of a barely trained base model's held-out outputs agreed with
            # the (1, S) pair's) and its quantized tensors are not shared (+430 KB, 19%,
            # for one more pair on the base preset).
            exported["int8"] = export_int8(loaded, exported["float32"].content, Path(tmp),
                                           calibration_sources, max_decode_samples, progress)
    return exported


# tokenizer.json and tokenizer.model: what a format 3 bundle held, replaced alike;
# bundle.txt and the vocabulary files: format 6's flat files (kit/runtime/flat_files.py).
BUNDLE_FILES = frozenset({"bundle.json", "model.tflite", "source_tokenizer.json",
                          "source_tokenizer.model", "target_tokenizer.json",
                          "target_tokenizer.model", "tokenizer.json", "tokenizer.model",
                          "bundle.txt", "source_vocab.txt", "target_vocab.txt",
                          "report.json"})


def _is_bundle(path):
    """Whether `path` is a directory that export wrote: one bundle (its bundle.json and
    nothing but bundle files) or an `--recipe all` set (report.json and bundles)."""
    from kit.runtime import BUNDLE_JSON, REPORT_JSON

    if not path.is_dir() or path.is_symlink():
        return False
    entries = list(path.iterdir())
    if (path / BUNDLE_JSON).is_file():
        return all(entry.is_file() and entry.name in BUNDLE_FILES for entry in entries)
    return ((path / REPORT_JSON).is_file()
            and all(entry.name == REPORT_JSON or _is_bundle(entry) for entry in entries))


def _check_out(out, run_path, overwrite):
    """Refuses an `--out` that export may not write or replace, before any work;
    whether `out` is an empty directory (made for the bundle, and so filled)."""
    from kit.files import link_loop

    from .errors import ExportError

    if link_loop(out):
        raise ExportError(f"--out {out} is a symbolic link loop (or too deep to follow); "
                          "choose another directory")
    resolved, run = out.resolve(), run_path.resolve()
    if resolved == run or resolved in run.parents:
        raise ExportError(f"--out {out} is the run directory or holds it; choose a new "
                          "directory for the bundle")
    if not out.exists():
        return False
    if not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()):
        return True
    if not _is_bundle(out):
        raise ExportError(f"--out {out} exists and is not a bundle written by export; "
                          "export replaces only its own bundles: choose a new directory")
    if not overwrite:
        raise ExportError(f"{out} already exists (a bundle): pass --overwrite to replace it")


def _write_bundle(directory, recipe, exported, float32_bytes, loaded, reference, progress):
    """One bundle directory: model and tokenizer files, the flat files and bundle.json,
    then verification into report.json.

    `exported` is the recipe's `export.convert.Exported`; verification compares it with
    `reference`, the original model's decoding, also when the file was converted from a
    rebuild (int8).
    """
    from kit.runtime import REPORT_JSON, TFLITE_FILE, Bundle, signature_specs
    from kit.runtime.bundle_format import bundle_spec, write_bundle_json
    from kit.runtime.interpreter import interpreter_class
    from kit.tokenizers import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE

    from .flatbuffer import op_tensor_types
    from .verify import gpu_compatibility, verify_bundle

    directory.mkdir(parents=True, exist_ok=True)
    content = exported.content
    (directory / TFLITE_FILE).write_bytes(content)
    # Each side's tokenizer under its bundle name (a run made before each side had its
    # own holds one tokenizer.json: it becomes both), with every file it uses (a
    # SentencePiece model beside its JSON): bundle.json lists them and their checksums.
    loaded.tokenizers.source.save(directory / SOURCE_TOKENIZER_FILE)
    loaded.tokenizers.target.save(directory / TARGET_TOKENIZER_FILE)
    signatures = signature_specs(interpreter_class()(model_content=content))
    info = loaded.info
    spec = bundle_spec(
        recipe, exported.config.to_dict(), loaded.tokenizers, signatures, exported.quantization,
        source_run={"path": str(info.path), "data": info.data, "metric": info.metric,
                    "precision": info.precision, "epochs_done": info.epochs_done,
                    "metrics": info.metrics}, variants=exported.variants)
    # The vocabulary files and bundle.txt (for apps without a JSON parser), bundle.json.
    write_bundle_json(directory, spec, loaded.tokenizers)

    progress(f"verifying {recipe} on {len(reference.sources)} held-out sources")
    row = {"recipe": recipe, "file_bytes": len(content),
           "size_ratio": len(content) / float32_bytes}
    row.update(verify_bundle(Bundle.load(directory), reference))
    row["gpu_compatible"], row["gpu_issues"] = gpu_compatibility(content)
    row["quantization"] = exported.quantization
    row["op_types"] = op_tensor_types(content)
    write_json(directory / REPORT_JSON, {"format_version": 1, "metric": reference.metric,
                                          "source_run": str(loaded.info.path),
                                          "machine": _machine(), **row})
    return row


def _replace(staging, out, overwrite=False, empty_seen=False):
    """Moves the finished `staging` directory to `out`, checking `out` again at that
    moment: export puts its bundle only where nothing is (or into the empty directory
    `empty_seen` at the start, made for the bundle), and with `overwrite` replaces only
    a bundle of its own, removed once the new one is in place. Anything else found at
    `out` is left as it is, and so is `staging` (the caller removes it); ExportError.
    """
    from .errors import ExportError

    aside = None  # beside `out`: what --overwrite moved away from it, until it is done
    moved = []
    try:
        for _ in range(_PLACE_ATTEMPTS):
            if _place(staging, out, empty_seen):
                break
            if not overwrite:
                raise ExportError(f"--out {out} appeared while export ran; it is left as "
                                  "it was and no bundle was written: choose another "
                                  "directory")
            # Moved away first, judged after: what is found to be a bundle is exactly
            # what gets removed, whatever happens at `out` in between.
            if aside is None:
                aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            target = aside / str(len(moved))
            try:
                os.rename(out, target)
            except FileNotFoundError:
                continue
            moved.append(target)
            if not _is_bundle(target) and not _is_empty_directory(target):
                raise ExportError(f"--out {out} changed while export ran and is not a "
                                  "bundle written by export; it is left as it was")
        else:
            raise ExportError(f"--out {out} kept being replaced while export ran; no "
                              "bundle was written")
    except BaseException:
        # What was at `out` last goes back; the bundles moved away before it go, as
        # --overwrite asked. If something took `out` meanwhile, all stay in `aside`.
        if moved and not _place(moved[-1], out, empty_seen=False):
            raise ExportError(f"--out {out} changed while export ran; what export moved "
                              f"away from it is kept in {aside}") from None
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _is_empty_directory(path):
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


# Each attempt after the first means that another process put something at --out
# between two steps of this one; only --overwrite tries again.
_PLACE_ATTEMPTS = 3


def _place(directory, out, empty_seen):
    """Renames `directory` to `out` if `out` is free; False, changing nothing, if not.

    Why mkdir, then rename: rename(2) of a directory silently replaces an existing
    *empty* directory and refuses a non-empty one (ENOTEMPTY or EEXIST), while mkdir(2)
    creates `out` only if nothing is there, atomically. So mkdir claims `out` (of two
    exports, or an export and a user, exactly one gets it) and the rename then replaces
    only the empty directory this process has just made; anything written into that
    meanwhile makes the rename fail instead of being lost. The race window is closed,
    not narrowed: no step replaces or deletes what this process did not make, except an
    empty directory the user made for the bundle (`empty_seen`), which the rename refuses
    as soon as it holds anything. (renameat2's RENAME_NOREPLACE would do it in one call;
    the standard library does not offer it.)
    """
    try:
        os.mkdir(out)
        claimed = True
    except FileExistsError:
        if not empty_seen:
            return False
        claimed = False
    try:
        os.rename(directory, out)
    except OSError as error:
        if claimed:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # the claim, while it is empty; never what was put into it
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return False
        raise
    return True


def _machine():
    from importlib.metadata import PackageNotFoundError, version

    try:
        interpreter = f"ai-edge-litert {version('ai-edge-litert')}"
    except PackageNotFoundError:
        interpreter = "tflite-runtime"
    return {"cpu": platform.machine(), "cpu_count": os.cpu_count(), "interpreter": interpreter,
            "python": platform.python_version()}


if __name__ == "__main__":
    sys.exit(main())
