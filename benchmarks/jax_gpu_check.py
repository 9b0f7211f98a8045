"""Training throughput and loss with Keras, JAX and the kit only: the GPU check.

    python -m benchmarks.jax_gpu_check [--sizes base,paper_base]
        [--policies float32,mixed_bfloat16,mixed_float16] [--steps 300] [--warmup 30]
        [--batch-size 64] [--json PATH]

For GPU machines that carry a CUDA build of JAX but no TensorFlow: nothing here needs
TensorFlow, so the data are pre-tokenized numpy arrays instead of tf.data. (Where
TensorFlow is installed, Keras's `set_random_seed` imports it to seed it too; the smoke
test runs this script with TensorFlow made unimportable.) It sets KERAS_BACKEND=jax
itself.

For each size and dtype policy, the kit's `Seq2SeqTransformer` and the TF tutorial's
architecture (`benchmarks/tutorial_model.py`, same dimensions) are built from the same
seed, compiled as `python -m kit train` compiles (Adam 0.9/0.98/1e-9, the warm-up
schedule, the label-smoothed loss on the real target tokens; jit on JAX), and trained on
the built-in dates with one character vocabulary per side, batches of `--batch-size`
padded to the data's longest source and target (static shapes, one compilation):
`--warmup` untimed steps (the compilation among them), then `--steps` timed steps
through `fit`. Reported: real target tokens per second over the timed steps, the
training loss of the last timed epoch, and the validation loss (the same loss) and
token accuracy after `--warmup + --steps` steps, on 2,000 held-out pairs.

Sizes: `base` is the kit's preset (D 128, 4+4 layers, 8 heads, FF 512); `paper_base`
is the paper's base model (D 512, 6+6 layers, 8 heads, FF 2048, dropout 0.1); `tiny`
(D 32, 1+1) is for a quick check on a CPU.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    raise SystemExit(f"error: this check runs on JAX; KERAS_BACKEND is "
                     f"{os.environ['KERAS_BACKEND']} (unset it or set it to jax)")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.sweep_jax import encode_task  # noqa: E402
from benchmarks.tutorial_model import TutorialTransformer  # noqa: E402
from kit.models import Seq2SeqTransformer, preset  # noqa: E402
from training.dates import generate_pairs  # noqa: E402
from training.losses import compile_for_training  # noqa: E402
from training.options import TrainOptions  # noqa: E402

SIZES = {
    "tiny": dict(num_encoder_layers=1, num_decoder_layers=1, model_dim=32, num_heads=4,
                 ff_dim=64, dropout=0.0),
    "base": {},  # the preset as it is
    "paper_base": dict(num_encoder_layers=6, num_decoder_layers=6, model_dim=512,
                       num_heads=8, ff_dim=2048, dropout=0.1),
}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
ARCHITECTURES = ("ours", "tutorial")
VALIDATION_PAIRS = 2000


def log(message):
    print(message, flush=True)


def load_arrays(train_pairs, seed):
    """The dates as numpy: train and validation (source, decoder input, labels)."""
    pairs = generate_pairs(train_pairs + VALIDATION_PAIRS, seed)
    random.Random(seed).shuffle(pairs)
    return encode_task(pairs[VALIDATION_PAIRS:], pairs[:VALIDATION_PAIRS])


def build(architecture, size, arrays, seed):
    """(model, config): `architecture` at `size`, compiled as `kit train` compiles."""
    vocab = {side: len(json.loads(arrays[f"{side}_vocabulary"]))
             for side in ("source", "target")}
    config = preset("base", source_vocab_size=vocab["source"],
                    target_vocab_size=vocab["target"],
                    max_source_length=arrays["train_source"].shape[1],
                    max_target_length=arrays["train_decoder"].shape[1], **SIZES[size])
    keras.utils.set_random_seed(seed)
    model = Seq2SeqTransformer(config) if architecture == "ours" else TutorialTransformer(config)
    return compile_for_training(model, TrainOptions(data="default", out="unused"),
                                config), config


def _fit(model, arrays, start, steps, batch_size):
    """`steps` steps of `fit` on batches start .. start + steps; (seconds, last loss)."""
    rows = slice(start * batch_size, (start + steps) * batch_size)
    labels = arrays["train_labels"][rows]
    began = time.perf_counter()
    history = model.fit((arrays["train_source"][rows], arrays["train_decoder"][rows]), labels,
                        sample_weight=(labels != 0).astype("float32"), batch_size=batch_size,
                        epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - began, float(history.history["loss"][-1])


def measure(architecture, size, policy, arrays, args):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model, config = build(architecture, size, arrays, args.seed)
        _fit(model, arrays, 0, args.warmup, args.batch_size)  # compiles
        seconds, train_loss = _fit(model, arrays, args.warmup, args.steps, args.batch_size)
        timed = arrays["train_labels"][args.warmup * args.batch_size:
                                       (args.warmup + args.steps) * args.batch_size]
        labels = arrays["valid_labels"]
        val_loss, val_accuracy = model.evaluate(
            (arrays["valid_source"], arrays["valid_decoder"]), labels,
            sample_weight=(labels != 0).astype("float32"), batch_size=500, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"size": size, "architecture": architecture, "policy": policy,
            "parameters": model.count_params(), "model_dim": config.model_dim,
            "layers": [config.num_encoder_layers, config.num_decoder_layers],
            "steps": args.steps, "seconds": seconds,
            "target_tokens_per_s": int(np.count_nonzero(timed)) / seconds,
            "train_loss": train_loss, "val_loss": float(val_loss),
            "val_token_accuracy": float(val_accuracy)}


def print_rows(rows, out=log):
    header = (f"{'size':<11} {'policy':<15} {'model':<9} {'params':>11} {'tok/s':>10} "
              f"{'x tutorial':>10} {'train loss':>10} {'val loss':>8} {'val acc':>7}")
    out(header)
    out("-" * len(header))
    tutorial = {(r["size"], r["policy"]): r for r in rows
                if r["architecture"] == "tutorial" and "error" not in r}
    for r in rows:
        if "error" in r:
            out(f"{r['size']:<11} {r['policy']:<15} {r['architecture']:<9} failed: {r['error']}")
            continue
        base = tutorial.get((r["size"], r["policy"]))
        ratio = r["target_tokens_per_s"] / base["target_tokens_per_s"] if base else float("nan")
        out(f"{r['size']:<11} {r['policy']:<15} {r['architecture']:<9} {r['parameters']:>11,} "
            f"{r['target_tokens_per_s']:>10,.0f} {ratio:>9.2f}x {r['train_loss']:>10.4f} "
            f"{r['val_loss']:>8.4f} {r['val_token_accuracy']:>7.3f}")


def _names(text, known, flag):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise SystemExit(f"error: {flag} takes names among {', '.join(known)}; "
                         f"got {text!r}")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="base,paper_base",
                        help=f"comma-separated, among {', '.join(SIZES)}")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help=f"comma-separated, among {', '.join(POLICIES)}")
    parser.add_argument("--steps", type=int, default=300, help="timed steps (default 300)")
    parser.add_argument("--warmup", type=int, default=30,
                        help="untimed steps first, the compilation among them (default 30)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("steps", "warmup", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    args.sizes = _names(args.sizes, SIZES, "--sizes")
    args.policies = _names(args.policies, POLICIES, "--policies")
    return args


def main(argv=None):
    import jax

    args = parse_args(argv)
    devices = [str(device) for device in jax.devices()]
    log(f"JAX {jax.__version__} on {', '.join(devices)}; Keras {keras.__version__}")
    arrays = load_arrays((args.warmup + args.steps) * args.batch_size, args.seed)
    rows = []
    for size in args.sizes:
        for policy in args.policies:
            for architecture in ARCHITECTURES:
                try:
                    row = measure(architecture, size, policy, arrays, args)
                except Exception as error:  # noqa: BLE001  (recorded: the others still run)
                    # e.g. Keras's MultiHeadAttention in mixed_float16 on JAX's CPU backend:
                    # "The precision 'F16_F16_F32' is not supported by dot_general on CPU".
                    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    rows.append({"size": size, "architecture": architecture,
                                 "policy": policy, "error": reason})
                    log(f"  {size} {policy} {architecture}: failed: {reason}")
                    continue
                log(f"  {size} {policy} {architecture}: {row['target_tokens_per_s']:,.0f} "
                    f"target tokens/s, val loss {row['val_loss']:.4f}")
                rows.append(row)
    log("")
    print_rows(rows)
    report = {"devices": devices, "jax": jax.__version__, "keras": keras.__version__,
              "args": {k: v for k, v in vars(args).items() if k != "json"},
              # The point of this script: it must run where TensorFlow is absent.
              "tensorflow_imported": sys.modules.get("tensorflow") is not None,
              "results": rows}
    log(f"TensorFlow imported: {report['tensorflow_imported']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
