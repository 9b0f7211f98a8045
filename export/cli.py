"""`python -m kit export RUN_DIR --recipe RECIPE --out BUNDLE_DIR`: run dir -> bundle.

    --recipe float32|float16|dynamic_int8|int8   one bundle in BUNDLE_DIR
    --recipe all                                 BUNDLE_DIR/<recipe>/ for each recipe,
                                                 plus BUNDLE_DIR/report.json comparing them

Each bundle is verified against the Keras model before it is kept (see export/verify.py);
the comparison table is printed on stdout, progress on stderr. A bundle is built in a
temporary directory beside BUNDLE_DIR and renamed into place only when complete, so a
failure or Ctrl-C leaves nothing half-written.
"""

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from training.run_dir import write_json

RECIPE_CHOICES = ("float32", "float16", "dynamic_int8", "int8", "all")
DEFAULT_SAMPLES = 200


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the kit's rule for user errors)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(
        prog="python -m kit export",
        description="Convert a finished training run into a verified LiteRT bundle "
                    "(model.tflite with encode and decode_step signatures, tokenizer, "
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
    parser.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES, metavar="N",
                        help="held-out sources to verify on (default: %(default)s)")
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv=None):
    """The command; returns the exit code (0 done, 1 export failed, 2 bad usage)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from export.convert import ExportError
    from export.runtime import BundleError, RuntimeUnavailable

    try:
        report = export_run(args.run_dir, args.recipe, args.out, overwrite=args.overwrite,
                            samples=args.samples)
    except (ExportError, BundleError, RuntimeUnavailable) as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"export: error: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("export: interrupted; no bundle written", file=sys.stderr)
        return 130
    from export.verify import format_notes, format_table

    print(format_table(report["recipes"], report["metric"]))
    for line in format_notes(report["recipes"]):
        print(line)
    print(f"bundle{'s' if args.recipe == 'all' else ''} written to {args.out}")
    return 0


def progress(message):
    print(f"export: {message}", file=sys.stderr, flush=True)


def export_run(run_dir, recipe, out, overwrite=False, samples=DEFAULT_SAMPLES,
               progress=progress):
    """Converts, verifies and writes the bundle(s); returns the comparison report.

    Raises ExportError (one line) for every problem a user can fix.
    """
    from export.convert import RECIPES, ExportError, export_model, load_run
    from training.run_dir import TEST_SAMPLE, RunDirError, read_pairs, read_run

    out = Path(out)
    if recipe not in RECIPE_CHOICES:
        raise ExportError(f"unknown recipe {recipe!r}: expected one of "
                          f"{', '.join(RECIPE_CHOICES)}")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists: pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    recipes = list(RECIPES) if recipe == "all" else [recipe]

    try:
        read_run(run_dir)  # a bad run dir fails before any progress line or TensorFlow
    except RunDirError as error:
        raise ExportError(str(error)) from None
    progress(f"loading {run_dir} and rebuilding the model in float32")
    loaded = load_run(run_dir)
    pairs = read_pairs(loaded.info.path / TEST_SAMPLE)[:samples]
    if not pairs:
        raise ExportError(f"{loaded.info.path / TEST_SAMPLE} holds no pairs to verify on")

    exported = export_model(loaded, recipes, progress=progress)  # float32 always included

    from export.verify import keras_reference

    progress(f"decoding {len(pairs)} held-out sources with the Keras model (the reference)")
    reference = keras_reference(loaded.model, loaded.tokenizer, pairs, loaded.info.metric)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
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
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _write_bundle(directory, recipe, exported, float32_bytes, loaded, reference, progress):
    """One bundle directory: files, bundle.json, then verification into report.json.

    `exported` is the recipe's `export.convert.Exported`; verification compares it with
    `reference`, the original model's decoding, also when the file was converted from a
    rebuild (int8).
    """
    from export.convert import op_tensor_types
    from export.runtime import BUNDLE_JSON, MODEL_FILE, REPORT_JSON, Bundle, signature_specs
    from export.runtime.interpreter import interpreter_class
    from export.verify import gpu_compatibility, verify_bundle
    from training.run_dir import TOKENIZER_FILE

    directory.mkdir(parents=True, exist_ok=True)
    content = exported.content
    (directory / MODEL_FILE).write_bytes(content)
    shutil.copyfile(loaded.info.path / TOKENIZER_FILE, directory / TOKENIZER_FILE)
    signatures = signature_specs(interpreter_class()(model_content=content))
    write_json(directory / BUNDLE_JSON, bundle_spec(recipe, loaded, signatures, exported))

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


def bundle_spec(recipe, loaded, signatures, exported):
    """The contents of bundle.json: all a device needs to write the decode loop.

    `exported` (an `export.convert.Exported`) gives the config the file was converted
    from (the int8 file's attention mask bias differs from the run's) and the recipe's
    quantization facts.
    """
    from export.runtime import BUNDLE_FORMAT_VERSION, MODEL_FILE
    from training.run_dir import TOKENIZER_FILE

    config, tokenizer, info = exported.config, loaded.tokenizer, loaded.info
    return {
        "format_version": BUNDLE_FORMAT_VERSION,
        "recipe": recipe,
        "quantization": exported.quantization,
        "model_file": MODEL_FILE,
        "tokenizer_file": TOKENIZER_FILE,
        "source_length": config.max_source_length,
        "target_length": config.max_target_length,
        "special_ids": {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id,
                        "bos": tokenizer.bos_id, "eos": tokenizer.eos_id},
        "vocab_size": {"source": config.source_vocab_size,
                       "target": config.target_vocab_size,
                       "tokenizer": tokenizer.vocab_size},
        "model": {**config.to_dict(), "head_dim": config.head_dim},
        "signatures": signatures,
        "decoding": {
            "source_ids": "tokenizer ids of the text (no BOS/EOS), cut to source_length "
                          "and right-padded with the pad id",
            "loop": "run encode once; self_cache = zeros; token = bos; for position in "
                    "0 .. target_length - 2: run decode_step(token_ids=[[token]], "
                    "position=[position], self_cache, source_mask, cross_cache), keep its "
                    "self_cache output for the next step, token = argmax(logits[0]); stop "
                    "after eos",
            "max_new_tokens": config.max_target_length - 1,
            "io_types": "inputs and outputs are float32 and int32 in every recipe; "
                        "quantization is internal to the file",
        },
        "source_run": {"path": str(info.path), "data": info.data, "metric": info.metric,
                       "precision": info.precision, "epochs_done": info.epochs_done,
                       "metrics": info.metrics},
    }


def _replace(staging, out):
    """Moves the finished `staging` directory to `out`, replacing an old `out` only after
    the new one is complete (the old one is moved aside, then removed)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / out.name)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
