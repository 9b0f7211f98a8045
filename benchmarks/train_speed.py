"""Training speed: the kit's model against the TF tutorial's Transformer, side by side.

    python benchmarks/train_speed.py [--preset small] [--batch-size 64]
        [--warmup 20] [--rounds 10] [--segment 40] [--seed 0] [--ablations]
        [--only NAME,...] [--backend tensorflow|jax|both] [--json PATH]

The contenders train on the built-in dates data with the same tokenizer, the same
dimensions (the preset's), the same compile call as `python -m kit train` (Adam
0.9/0.98/1e-9, the warm-up schedule, the label-smoothed loss weighted by the pipeline's
sample weights) and the same number of steps, each fed by its natural pipeline:

- tutorial: the architecture of the TensorFlow tutorial "Neural machine translation
  with a Transformer and Keras", rewritten here in Keras 3: post-LN layers around the
  stock `keras.layers.MultiHeadAttention`, a causal mask in the decoder's self-attention,
  padding masks, a concatenated sine/cosine positional encoding, a final Dense. One
  deliberate change: the tutorial passes `key_dim=d_model` (every head as wide as the
  model, four to eight times the attention weights); here `key_dim = D / H`, so both
  models have the same dimensions. Fed by shuffled batches padded to their longest
  sequence, as the tutorial does.
- ours: `kit.models.Seq2SeqTransformer` with the preset's config (the defaults) fed by
  `training.pipeline.make_dataset` (length buckets); "ours + XLA" compiles with
  `jit_compile=True` on the pipeline's static shapes; "ours v0.1" is the architecture
  that kit v0.1 built (`V0_1`), unless the defaults are that.

Each training step is a call of the compiled Keras train function on a live tf.data
iterator, as in `fit`. After one building step and a warm-up, the contenders run in
rounds of `--segment` steps each, in a rotating order, so that a change in the machine's
load hits all of them alike. A step whose batch shape an XLA contender meets for the
first time includes a compilation: it is left out of that contender's rate and counted
apart. Throughput is real (non-padding) target tokens per second of wall clock. The
validation loss is the unsmoothed cross-entropy per real target token, computed by the
same code for every model on the same validation batches.

`--backend jax` runs the same contenders on Keras's JAX backend (the script runs itself
again with KERAS_BACKEND=jax), fed by the same tf.data pipelines: each step is
`train_on_batch` on the iterator's next batch as numpy (on JAX every train step is
compiled, so a step that meets a new batch shape is left out of the rate as for XLA,
and "ours + XLA" is "ours" on static shapes). `--backend both` runs the TensorFlow and
the JAX benchmark one after the other and prints them side by side (tokens/s per
contender and JAX / TensorFlow); the two runs are minutes apart, not interleaved.

`--ablations` adds contenders that tell where a difference comes from: each architecture
on the other's pipeline, static shapes without XLA, buckets of width 4, and v0.1 with
each architecture option of `TransformerConfig` (post-LN, the smaller per-head
initialisation of the attention kernels, dropout on embeddings and attention weights
only), alone and together (`ARCHITECTURES`).
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks import _common as common  # noqa: E402
from kit.models import PRESETS, Seq2SeqTransformer  # noqa: E402
from kit.models.config import LEGACY  # noqa: E402

ON_JAX = keras.backend.backend() == "jax"  # train steps through train_on_batch (docstring)

# The tutorial's architecture lives in benchmarks/tutorial_model.py (Keras only, so that
# the JAX GPU check can import it without TensorFlow).
from benchmarks.tutorial_model import (  # noqa: E402, F401  (re-exported for the tests)
    TutorialTransformer,
    tutorial_positional_encoding,
)

# -- the contenders and the timing -------------------------------------------------------

# Our architecture as kit v0.1 built it (pre-LN, Glorot over each (D, H*Dh) matrix,
# dropout also on residual branches and the feed-forward inner layer), and each of the
# architecture options of TransformerConfig. Contenders are config overrides: no second
# copy of our model's code.
V0_1 = {"norm_first": True, **LEGACY}
POST_LN = {"norm_first": False}
PER_HEAD_INIT = {"attention_initializer": "glorot_uniform_per_head"}
FEWER_DROPOUT = {"residual_dropout": False, "feed_forward_dropout": False}
ARCHITECTURES = [
    ("v0.1", V0_1),
    ("v0.1 + post-LN", {**V0_1, **POST_LN}),
    ("v0.1 + per-head init", {**V0_1, **PER_HEAD_INIT}),
    ("v0.1 + fewer dropout", {**V0_1, **FEWER_DROPOUT}),
    ("v0.1 + per-head + fewer dr.", {**V0_1, **PER_HEAD_INIT, **FEWER_DROPOUT}),
    ("v0.1 + all three", {**V0_1, **POST_LN, **PER_HEAD_INIT, **FEWER_DROPOUT}),
]


@dataclass
class Contender:
    name: str
    pipeline: str  # how its batches are made, for the table
    architecture: str  # "tutorial" or "ours"
    jit_compile: bool
    make_dataset: object  # () -> a fresh, identical tf.data.Dataset of training batches
    config_overrides: dict = field(default_factory=dict)  # e.g. V0_1 (ours only)
    model: object = None
    iterator: object = None
    stats: list = None  # BatchStats of every step, in order (step 0 builds the model)
    step_seconds: list = field(default_factory=list)  # wall clock of steps 1, 2, ...
    timed_steps: list = field(default_factory=list)  # step indices inside the rounds
    rounds: list = field(default_factory=list)  # per round: (target tokens, seconds)
    compile_steps: list = field(default_factory=list)  # (step, seconds): a new XLA shape
    build_seconds: float = 0.0  # the building step: tracing (and for XLA, one compilation)
    validation: dict = None

    def new_shape_steps(self):
        """Steps whose batch shape no earlier step had (XLA compiles at each of them)."""
        seen, steps = set(), set()
        for index, stats in enumerate(self.stats):
            if stats.shape not in seen:
                seen.add(stats.shape)
                steps.add(index)
        return steps

    def train_steps(self, count):
        """Runs `count` steps; returns the wall-clock seconds of each."""
        times = []
        with common.no_garbage_collection():
            for _ in range(count):
                if ON_JAX:  # the batch is read before the clock starts, as fit prefetches
                    (source, decoder_input), labels, weights = next(self.iterator)
                    with common.Stopwatch() as watch:
                        self.model.train_on_batch((source, decoder_input), labels,
                                                  sample_weight=weights)
                else:
                    with common.Stopwatch() as watch:
                        self.model.train_function(self.iterator)
                times.append(watch.seconds)
        self.step_seconds.extend(times)
        return times

    def timed_segment(self, count):
        """One segment of a round: runs `count` steps and books their tokens and time,
        except steps that compiled a new XLA shape."""
        first = 1 + len(self.step_seconds)
        compiling = self.new_shape_steps() if self.jit_compile or ON_JAX else set()
        tokens = seconds = 0.0
        for step, took in zip(range(first, first + count), self.train_steps(count)):
            if step in compiling:
                self.compile_steps.append((step, took))
                continue
            self.timed_steps.append(step)
            tokens += self.stats[step].target_tokens
            seconds += took
        self.rounds.append((tokens, seconds))


def build_model(contender, config, seed):
    config = dataclasses.replace(config, **contender.config_overrides)
    keras.utils.set_random_seed(seed)  # every "ours" starts from the same weights
    if contender.architecture == "ours":
        model = Seq2SeqTransformer(config)
        model.build()
    else:
        model = TutorialTransformer(config)
    return common.compile_for_training(model, config, contender.jit_compile)


def contenders_for(data, args):
    split, batch, seed = data.train, args.batch_size, args.seed
    c = data.config
    static = (c.max_source_length, c.max_target_length)
    steps = 1 + args.warmup + args.rounds * args.segment
    epochs = 1 + steps // max(1, len(split) // batch)

    def padded():
        return common.epochs_of(common.padded_to_longest, split, batch, epochs, seed)

    def buckets(**kwargs):
        return lambda: common.epochs_of(common.bucketed, split, batch, epochs, seed, **kwargs)

    # "ours" is the defaults; an architecture variant equal to them is not run twice.
    same_as_defaults = [name for name, overrides in ARCHITECTURES
                        if dataclasses.replace(c, **overrides) == c]
    ours = "ours" + "".join(f" = {name}" for name in same_as_defaults)
    contenders = [
        Contender("tutorial", "padded to longest", "tutorial", False, padded),
        Contender(ours, "buckets", "ours", False, buckets()),
        Contender("ours + XLA", "buckets, static S,T", "ours", True,
                  buckets(static_shapes=static)),
    ]
    if "v0.1" not in same_as_defaults:
        contenders.append(Contender("ours v0.1", "buckets", "ours", False, buckets(),
                                    config_overrides=V0_1))
    if args.ablations:
        contenders += [
            Contender("ours, tutorial's pipeline", "padded to longest", "ours", False, padded),
            Contender("tutorial, our pipeline", "buckets", "tutorial", False, buckets()),
            Contender("ours, static S,T, no XLA", "buckets, static S,T", "ours", False,
                      buckets(static_shapes=static)),
            Contender("ours, buckets of 4", "buckets of width 4", "ours", False,
                      buckets(bucket_width=4)),
        ]
        contenders += [Contender(name, "buckets", "ours", False, buckets(),
                                 config_overrides=overrides)
                       for name, overrides in ARCHITECTURES[1:]
                       if name not in same_as_defaults]
    if args.only:
        # "ours = v0.1 + all three" answers to either name.
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {alias for c in contenders for alias in c.name.split(" = ")}
        if unknown:
            raise SystemExit(f"--only: no contender named {', '.join(sorted(unknown))}; "
                             f"there are: {', '.join(c.name for c in contenders)}")
        contenders = [c for c in contenders
                      if c.name == "tutorial" or wanted & set(c.name.split(" = "))]
    return contenders, steps


def validation_metrics(model, dataset):
    """Cross-entropy (no label smoothing) and accuracy per real target token."""
    if ON_JAX:
        return _validation_metrics_numpy(model, dataset)
    @tf.function(reduce_retracing=True)
    def sums(source, decoder_input, labels, weights):
        logits = tf.cast(model((source, decoder_input), training=False), tf.float32)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
                       tf.float32)
        return (tf.reduce_sum(loss * weights), tf.reduce_sum(hits * weights),
                tf.reduce_sum(weights))

    total = np.zeros(3)
    for (source, decoder_input), labels, weights in dataset:
        total += [float(x) for x in sums(source, decoder_input, labels, weights)]
    return {"loss": total[0] / total[2], "token_accuracy": total[1] / total[2]}


def _validation_metrics_numpy(model, dataset):
    """`validation_metrics` on any backend: the logits as numpy, the sums in float64."""
    total = np.zeros(3)
    for (source, decoder_input), labels, weights in dataset.as_numpy_iterator():
        logits = ops.convert_to_numpy(model((source, decoder_input), training=False))
        logits = logits.astype(np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        loss = -np.take_along_axis(log_probs, labels[..., None].astype(np.int64), -1)[..., 0]
        hits = (logits.argmax(-1) == labels).astype(np.float64)
        total += [(loss * weights).sum(), (hits * weights).sum(), weights.sum()]
    return {"loss": total[0] / total[2], "token_accuracy": total[1] / total[2]}


def run(args, log=print):
    keras.mixed_precision.set_global_policy("float32")
    # Every contender traces its own copy of Keras's train function, which TensorFlow's
    # retracing heuristic mistakes for one function traced again and again.
    tf.get_logger().setLevel("ERROR")
    data = common.load_data(args.preset, args.train_size, args.validation_size, args.seed)
    contenders, steps = contenders_for(data, args)
    log(f"backend {keras.backend.backend()}, "
        f"preset {args.preset}, batch {args.batch_size}, {steps} steps each "
        f"(1 build + {args.warmup} warm-up + {args.rounds} rounds x {args.segment}), "
        f"{len(data.train)} training pairs, load average {common.load_average()}")

    for contender in contenders:
        contender.stats = common.batch_stats(contender.make_dataset(), steps)
        if len(contender.stats) < steps:
            raise SystemExit(f"{contender.name}: the pipeline gave {len(contender.stats)} "
                             f"batches, {steps} needed")
        contender.model = build_model(contender, data.config, args.seed)
        with common.Stopwatch() as watch:
            common.build_with_one_step(contender.model, contender.make_dataset())
        contender.build_seconds = watch.seconds
        rest = contender.make_dataset().skip(1)
        contender.iterator = (rest.as_numpy_iterator() if ON_JAX else
                              common.training_iterator(contender.model, rest))
        log(f"  {contender.name}: built and traced in {watch.seconds:.1f} s, "
            f"{contender.model.count_params():,} parameters")
    # Only once every model is built: a model's first step after another model's first
    # `fit` takes seconds (2 s measured here, no retracing), and must not land in a round.
    for contender in contenders:
        contender.train_steps(args.warmup)

    for round_index in range(args.rounds):
        shift = round_index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            contender.timed_segment(args.segment)
        log(f"  round {round_index + 1}/{args.rounds} done, load average "
            f"{common.load_average()}")

    validation = common.bucketed_validation(data.validation, args.batch_size)
    for contender in contenders:
        contender.validation = validation_metrics(contender.model, validation)
    return data, contenders, steps


def summarize(contenders):
    """One dict per contender with the table's figures; speed-ups against the first.

    `speedup` is the median over rounds of (its tokens/s) / (the first's tokens/s) in the
    same round: each round's contenders ran within seconds of each other, so a change
    in the machine's load cancels out; `speedup_total` divides the whole runs' rates.
    """
    rows = []
    for contender in contenders:
        timed = [contender.step_seconds[step - 1] for step in contender.timed_steps]
        tokens = sum(contender.stats[step].target_tokens for step in contender.timed_steps)
        source_pad, target_pad = common.padding_fractions(contender.stats)
        rows.append({
            "name": contender.name, "pipeline": contender.pipeline,
            "jit_compile": contender.jit_compile,
            "parameters": contender.model.count_params(),
            "steps": len(contender.stats), "timed_steps": len(timed),
            "ms_per_step": 1000.0 * sum(timed) / len(timed),
            "median_ms_per_step": 1000.0 * statistics.median(timed),
            "target_tokens_per_s": tokens / sum(timed),
            "source_padding": source_pad, "target_padding": target_pad,
            "mean_batch_shape": [float(np.mean([s.shape[i] for s in contender.stats]))
                                 for i in (1, 2)],
            "build_seconds": contender.build_seconds,
            "xla_new_shape_steps": len(contender.compile_steps),
            "xla_compile_seconds": sum(took - statistics.median(timed)
                                       for _, took in contender.compile_steps),
            "val_loss": contender.validation["loss"],
            "val_token_accuracy": contender.validation["token_accuracy"],
            "round_rates": [t / s for t, s in contender.rounds],
        })
    base = rows[0]
    for row in rows:
        per_round = [mine / theirs for mine, theirs in zip(row["round_rates"],
                                                          base["round_rates"])]
        row["speedup"] = statistics.median(per_round)
        row["speedup_range"] = [min(per_round), max(per_round)]
        row["speedup_total"] = row["target_tokens_per_s"] / base["target_tokens_per_s"]
    return rows


def print_table(rows, out=print):
    header = (f"{'contender':<36} {'pipeline':<20} {'ms/step':>7} {'tgt tok/s':>9} "
              f"{'x tutorial':>10} {'rounds':>9} {'src pad':>7} {'tgt pad':>7} "
              f"{'val loss':>8} {'val acc':>7}")
    out(header)
    out("-" * len(header))
    for r in rows:
        low, high = r["speedup_range"]
        out(f"{r['name']:<36} {r['pipeline']:<20} {r['ms_per_step']:7.1f} "
            f"{r['target_tokens_per_s']:9,.0f} {r['speedup']:9.2f}x {low:4.2f}-{high:<4.2f} "
            f"{r['source_padding']:7.0%} {r['target_padding']:7.0%} {r['val_loss']:8.4f} "
            f"{r['val_token_accuracy']:7.3f}")
    out("x tutorial: median over rounds of the ratio within a round (rounds: its range). "
        "val loss: cross-entropy per real target token, no label smoothing.")
    for r in rows:
        if r["jit_compile"]:
            out(f"{r['name']}: {r['xla_new_shape_steps']} timed steps met a new batch shape "
                f"and compiled ({r['xla_compile_seconds']:.1f} s above a median step in all); "
                f"they are left out of its rate. Building step: {r['build_seconds']:.1f} s.")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed steps after the building step (default 20)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="timed rounds; each contender runs one segment per round")
    parser.add_argument("--segment", type=int, default=40, help="steps per segment")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--validation-size", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablations", action="store_true",
                        help="also: each architecture on the other's pipeline, static shapes "
                             "without XLA, buckets of width 4, v0.1 with each architecture "
                             "option alone and together")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated contender names to run (the tutorial, the "
                             "reference, always runs), e.g. to repeat some with another seed")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "both"),
                        default=keras.backend.backend(),
                        help="the Keras backend to train on, or both one after the other "
                             "(default: the configured one)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("batch_size", "rounds", "segment", "train_size", "validation_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def _on_backend(backend, argv, json_path):
    """This script run again on `backend` (a process has one Keras backend), writing
    its figures to `json_path`."""
    argv = [a for a in (sys.argv[1:] if argv is None else argv)]
    for flag in ("--backend", "--json"):  # drop the flag and its value
        while flag in argv:
            del argv[argv.index(flag):argv.index(flag) + 2]
        argv = [a for a in argv if not a.startswith(flag + "=")]
    subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv, "--backend", backend,
                    "--json", str(json_path)], check=True,
                   env={**os.environ, "KERAS_BACKEND": backend})
    return json.loads(Path(json_path).read_text(encoding="utf-8"))


def print_backends(reports, out=print):
    """The TensorFlow and JAX runs' contenders side by side."""
    tf_rows = {r["name"]: r for r in reports["tensorflow"]["results"]}
    jax_rows = {r["name"]: r for r in reports["jax"]["results"]}
    header = (f"{'contender':<36} {'TF tok/s':>9} {'JAX tok/s':>9} {'JAX/TF':>7} "
              f"{'TF val loss':>11} {'JAX val loss':>12}")
    out(header)
    out("-" * len(header))
    for name, mine in tf_rows.items():
        theirs = jax_rows.get(name)
        if theirs is None:
            continue
        out(f"{name:<36} {mine['target_tokens_per_s']:9,.0f} "
            f"{theirs['target_tokens_per_s']:9,.0f} "
            f"{theirs['target_tokens_per_s'] / mine['target_tokens_per_s']:7.2f} "
            f"{mine['val_loss']:11.4f} {theirs['val_loss']:12.4f}")
    out("tok/s: real target tokens per second over the timed steps; the two backends ran "
        "one after the other in separate processes.")


def main(argv=None):
    args = parse_args(argv)
    if args.backend == "both":
        with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
            reports = {backend: _on_backend(backend, argv, Path(tmp) / f"{backend}.json")
                       for backend in ("tensorflow", "jax")}
        print()
        print_backends(reports)
        if args.json:
            Path(args.json).write_text(json.dumps(reports, indent=2), encoding="utf-8")
        return
    if args.backend != keras.backend.backend():
        with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
            report = _on_backend(args.backend, argv, Path(tmp) / "report.json")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        return
    _, contenders, steps = run(args)
    rows = summarize(contenders)
    print()
    print(f"{steps} training steps each, batch {args.batch_size}, preset {args.preset}; "
          f"rates over the {args.rounds} x {args.segment} timed steps; "
          f"load average {common.load_average()}")
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": rows}, indent=2),
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
