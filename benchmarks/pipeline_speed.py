"""Does the tf.data pipeline keep the model fed? Batches per second of
`training.pipeline.make_dataset` alone against the model's training steps per second.

    python benchmarks/pipeline_speed.py [--preset small] [--batch-size 64]
        [--rounds 6] [--segment 40] [--jit-compile] [--json PATH]

Three things are timed, in rounds and a rotating order so that the machine's load
hits them alike, at the same batch size:

- pipeline alone: batches taken from a fresh epoch's `make_dataset` iterator, no model
  (its first batch, which waits for the shuffle buffer and the first full bucket, is
  timed apart: training pays it once per epoch);
- model alone: training steps of `Seq2SeqTransformer` (compiled as `python -m kit train`
  does) on batches already in memory (the pipeline's first batches, cached), so that
  no pipeline work is done while it runs;
- model fed by the pipeline: training steps on a live `make_dataset` iterator, as in
  training, where the pipeline's threads share the CPU with the model.

The pipeline keeps the model fed when "pipeline alone" is well above "model alone" and
"fed" is close to "model alone".
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from benchmarks import _common as common  # noqa: E402
from kit.models import PRESETS, Seq2SeqTransformer  # noqa: E402

CACHED_BATCHES = 100  # the model-alone steps cycle through these


def run(args, log=print):
    keras.mixed_precision.set_global_policy("float32")
    data = common.load_data(args.preset, args.train_size, 10, args.seed)
    config = data.config
    static = ((config.max_source_length, config.max_target_length) if args.jit_compile
              else None)
    batches_per_epoch = max(2, len(data.train) // args.batch_size)
    need = 1 + max(args.warmup, CACHED_BATCHES) + args.rounds * args.segment
    epochs = 1 + need // batches_per_epoch
    # The pipeline alone is an order of magnitude faster than the model: time more of it.
    pipeline_count = min(batches_per_epoch - 1, 5 * args.segment)

    def one_epoch():
        return common.bucketed(data.train, args.batch_size, args.seed, static_shapes=static)

    def epochs_in_a_row():
        return common.epochs_of(common.bucketed, data.train, args.batch_size, epochs,
                                args.seed, static_shapes=static)

    log(f"preset {args.preset}, batch {args.batch_size}, jit_compile {args.jit_compile}, "
        f"{len(data.train)} training pairs ({batches_per_epoch} batches an epoch), "
        f"load average {common.load_average()}")
    keras.utils.set_random_seed(args.seed)
    model = common.compile_for_training(Seq2SeqTransformer(config), config, args.jit_compile)
    common.build_with_one_step(model, epochs_in_a_row())
    cached_iterator = common.training_iterator(
        model, epochs_in_a_row().take(CACHED_BATCHES).cache().repeat())
    fed_iterator = common.training_iterator(model, epochs_in_a_row().skip(1))

    def model_steps(iterator, count):
        for _ in range(count):
            model.train_function(iterator)

    first_batch_seconds = []

    def pipeline_alone(count):
        """A fresh epoch's iterator (an idle one would fill its buffers while the model
        runs, and drain them here): its first batch is timed apart, then `count` more."""
        iterator = iter(one_epoch())
        with common.Stopwatch() as watch:
            next(iterator)
        first_batch_seconds.append(watch.seconds)
        with common.Stopwatch() as watch:
            for _ in range(count):
                next(iterator)
        return count, watch.seconds

    def timed_steps(iterator, count):
        with common.Stopwatch() as watch:
            model_steps(iterator, count)
        return count, watch.seconds

    activities = {
        "pipeline alone (batches/s)": lambda: pipeline_alone(pipeline_count),
        "model alone (steps/s)": lambda: timed_steps(cached_iterator, args.segment),
        "model fed by the pipeline (steps/s)": lambda: timed_steps(fed_iterator, args.segment),
    }
    with common.no_garbage_collection():
        # Fills the cache; with XLA, also compiles every batch shape the cache holds.
        model_steps(cached_iterator, max(args.warmup, CACHED_BATCHES))
        model_steps(fed_iterator, args.warmup)
    rates = {name: [] for name in activities}
    names = list(activities)
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            with common.no_garbage_collection():
                count, seconds = activities[name]()
            rates[name].append(count / seconds)
        log(f"  round {round_index + 1}/{args.rounds} done, load average "
            f"{common.load_average()}")
    return {"epoch_first_batch_s": statistics.median(first_batch_seconds),
            "pipeline_batches_per_segment": pipeline_count,
            "rates": {name: statistics.median(values) for name, values in rates.items()},
            "rounds": rates}


def print_report(result, out=print):
    rates = result["rates"]
    pipeline, alone, fed = (rates[name] for name in rates)
    out(f"{'':38} {'per second (median of rounds)':>30}")
    for name, value in rates.items():
        out(f"{name:38} {value:30.1f}")
    out(f"pipeline alone / model alone: {pipeline / alone:.1f}x")
    out(f"model fed / model alone: {fed / alone:.2f} (1.00: the pipeline costs the model nothing)")
    out(f"first batch of a fresh epoch: {result['epoch_first_batch_s']:.2f} s (median; "
        f"paid once per epoch)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--segment", type=int, default=40,
                        help="batches or steps per timed segment")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit-compile", action="store_true",
                        help="the model with XLA, the pipeline with static shapes")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("batch_size", "rounds", "segment", "train_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    print()
    print(f"batch {args.batch_size}, preset {args.preset}, jit_compile {args.jit_compile}, "
          f"{args.rounds} rounds x {args.segment}; load average {common.load_average()}")
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **result}, indent=2),
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
