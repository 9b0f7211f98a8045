"""Decoding speed against CTranslate2, side by side on one CPU thread.

    pip install -r requirements-bench.txt
    python benchmarks/ct2_speed.py [--preset base] [--source-length 40]
        [--target-length 64] [--train-steps 48] [--rounds 9] [--sentences 8]
        [--batch 32] [--work-dir DIR] [--json PATH]

Setup (untimed, with TensorFlow): `decode_speed.train_run` trains the preset on the
built-in dates data for `--train-steps` steps with S and T fixed; `export.cli.
export_run(run, "all", ...)` writes and verifies the four recipes' bundles with the
default signature pairs (batch 1, 4 and 32 at S; int8 batch 1 only), and the float32
recipe once more with a source-length bucket of S/2 rounded up to a multiple of 8;
`benchmarks/ct2_port.port` writes the same weights as a CTranslate2 model. Before any
timing, CTranslate2's greedy ids are checked against the Keras model's on the held-out
sources (`ct2_port.check_equal`: equal ids, and the largest difference of a token's
log-probability), and the bundles' against Keras by export's verification (one at a
time and through the batch pairs).

Timing runs in a worker process that imports numpy, the kit's runtime and ctranslate2
only, with one thread everywhere (LiteRT `num_threads=1`; CTranslate2 `intra_threads=1,
inter_threads=1`). Every contender decodes the same held-out sources to exactly T - 1
tokens, whatever the argmax (EOS does not stop it), its encoder included:

- kit, batch 1: each recipe's bundle through the CompiledModel loop; the bucketed
  float32 bundle with each source through the smallest source-length pair that holds
  it (`Bundle.variants`);
- kit, batch B: the `--batch` sources at once through the smallest batch pair (the
  recipes that have one);
- CTranslate2 float32 and int8 (the float32 model loaded with `compute_type="int8"`),
  one source per `translate_batch` call, then `--batch` sources in one call.

A round runs every contender once, in an order rotated each round. ms per token is the
median over rounds; a ratio is the median over rounds of the ratio within a round,
which cancels the machine's drifts (it is shared).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

GOALS = {"float32": 0.85, "dynamic_int8": 0.8}  # kit / CTranslate2 time per token, batch 1


def log(message):
    print(message, flush=True)


# -- setup: train, export, port, check -----------------------------------------------

def setup(args, work):
    """Trains, exports and ports into `work`; returns what the worker needs."""
    from benchmarks import ct2_port
    from benchmarks.decode_speed import train_run
    from export.cli import export_run
    from export.load import load_run
    from kit.tokenizers import BOS_ID, EOS_ID, source_ids
    from training.run_dir import TEST_SAMPLE, read_pairs, read_run

    run_dir, bundles, ported = work / "run", work / "bundles", work / "ct2"
    started = time.perf_counter()
    log(f"training {args.preset} for {args.train_steps} steps (S {args.source_length}, "
        f"T {args.target_length})")
    train_run(args, run_dir)
    log("exporting every recipe (default signature pairs)")
    report = export_run(run_dir, "all", bundles, overwrite=True, samples=args.verify_samples,
                        progress=lambda message: None)
    bucket = -(-args.source_length // 2 // 8) * 8  # S/2 rounded up to a multiple of 8
    log(f"exporting float32 with a source-length bucket of {bucket} too")
    export_run(run_dir, "float32", work / "bucketed", overwrite=True, samples=8,
               batch_sizes=(1,), source_lengths=(bucket,), progress=lambda message: None)
    loaded = load_run(read_run(run_dir))
    ct2_port.port(loaded.model, ported)
    pairs = read_pairs(run_dir / TEST_SAMPLE)
    S, T = loaded.config.max_source_length, loaded.config.max_target_length
    sources = np.array([source_ids(loaded.tokenizers.source, source, S)
                        for source, _ in pairs], np.int32)
    checks = {}
    for compute_type in ("float32", "int8"):
        translator = ct2_port.load(ported, compute_type=compute_type)
        checks[compute_type] = ct2_port.check_equal(loaded.model, translator,
                                                    sources[:args.check_sources],
                                                    BOS_ID, EOS_ID, T - 1)
        log(f"CTranslate2 {compute_type} against Keras: {checks[compute_type]}")
    return {
        "bundles": str(bundles), "bucketed": str(work / "bucketed"), "bucket": bucket,
        "ct2": str(ported), "sources": sources.tolist(),
        "config": loaded.config.to_dict(), "ct2_checks": checks,
        "export": [{key: row.get(key) for key in (
            "recipe", "file_bytes", "token_exact", "batch_token_exact", "max_logit_diff")}
            for row in report["recipes"]],
        "setup_seconds": time.perf_counter() - started,
        "mean_source_tokens": float(np.mean([np.count_nonzero(row) for row in sources])),
    }


# -- the worker: one thread, rounds ----------------------------------------------------

def worker(spec_path, result_path):
    import ctranslate2

    from benchmarks import ct2_port
    from kit.runtime import Bundle
    from kit.runtime.recipes import RECIPES

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    info, args = spec["setup"], spec["args"]
    tokens = info["config"]["max_target_length"] - 1
    sources = np.array(info["sources"], np.int32)
    singles = sources[:args["sentences"]]
    batch = sources[:args["batch"]]
    bundles = {recipe: Bundle.load(Path(info["bundles"]) / recipe, num_threads=1)
               for recipe in RECIPES}
    translators = {kind: ct2_port.load(info["ct2"], compute_type=kind)
                   for kind in ("float32", "int8")}

    def kit_single(bundle):
        def run():
            for row in singles:
                steps, ids = bundle.variants.single_for(row)
                steps.start(ids)
                token = bundle.bos_id
                for position in range(tokens):
                    token = int(np.argmax(steps.step(token, position)))
            return len(singles) * tokens
        return run

    def kit_batch(bundle):
        def run():
            lengths = [np.count_nonzero(row) for row in batch]
            # Found: only bundles with a batch pair are timed here.
            steps, (rows, cut) = bundle.variants.batch_for(len(batch), max(lengths))
            ids = np.zeros((rows, cut), np.int32)
            ids[:len(batch)] = batch[:, :cut]
            steps.start(ids)
            row_tokens = np.full(len(batch), bundle.bos_id, np.int32)
            for position in range(tokens):
                row_tokens = np.argmax(steps.step_rows(row_tokens, position), axis=-1)
            return len(batch) * tokens
        return run

    def ct2_single(translator):
        def run():
            for row in singles:
                ct2_port.ct2_forced(translator, row[None], tokens)
            return len(singles) * tokens
        return run

    def ct2_batch(translator):
        def run():
            ct2_port.ct2_forced(translator, batch, tokens)
            return len(batch) * tokens
        return run

    contenders = {f"kit {recipe} b1": kit_single(bundle) for recipe, bundle in bundles.items()}
    bucketed = Bundle.load(info["bucketed"], num_threads=1)
    contenders[f"kit float32 b1 bucket {info['bucket']}"] = kit_single(bucketed)
    contenders.update({f"kit {recipe} b{args['batch']}": kit_batch(bundle)
                       for recipe, bundle in bundles.items()
                       if bundle.variants.max_batch >= args["batch"]})  # int8 has none
    for kind, translator in translators.items():
        contenders[f"ct2 {kind} b1"] = ct2_single(translator)
        contenders[f"ct2 {kind} b{args['batch']}"] = ct2_batch(translator)
    for run in contenders.values():  # warm-up: first-call allocations
        run()
    names = list(contenders)
    rounds = []
    for r in range(args["rounds"]):
        order = names[r % len(names):] + names[:r % len(names)]
        timings = {}
        for name in order:
            start = time.perf_counter()
            count = contenders[name]()
            timings[name] = 1000.0 * (time.perf_counter() - start) / count  # ms per token
        rounds.append(timings)
        log(f"round {r + 1}/{args['rounds']}: " + ", ".join(
            f"{name} {timings[name]:.4f}" for name in names))
    Path(result_path).write_text(json.dumps({
        "rounds": rounds, "ctranslate2": ctranslate2.__version__,
        "modes": {recipe: bundle.mode for recipe, bundle in bundles.items()}}),
        encoding="utf-8")


# -- the summary -------------------------------------------------------------------------

def summarize(rounds, batch, bucket):
    """Median ms per token of each contender, and the within-round ratios."""
    names = list(rounds[0])
    ms = {name: statistics.median(r[name] for r in rounds) for name in names}

    def ratio(a, b):
        values = [r[a] / r[b] for r in rounds]
        return {"median": statistics.median(values), "low": min(values), "high": max(values)}

    ratios = {
        "float32 b1 (kit / ct2 float32)": ratio("kit float32 b1", "ct2 float32 b1"),
        "dynamic_int8 b1 (kit / ct2 int8)": ratio("kit dynamic_int8 b1", "ct2 int8 b1"),
        "int8 b1 (kit / ct2 int8)": ratio("kit int8 b1", "ct2 int8 b1"),
        f"float32 b1 bucket {bucket} (with / without)": ratio(
            f"kit float32 b1 bucket {bucket}", "kit float32 b1"),
    }
    for recipe in ("float32", "float16", "dynamic_int8"):
        # Tokens per second, kit over CTranslate2 int8: the ratio of times, inverted.
        value = ratio(f"ct2 int8 b{batch}", f"kit {recipe} b{batch}")
        ratios[f"{recipe} b{batch} tokens/s (kit / ct2 int8)"] = value
    return {"ms_per_token": ms, "tokens_per_second": {n: 1000.0 / v for n, v in ms.items()},
            "ratios": ratios}


def print_summary(summary, info, batch):
    log("")
    log(f"{'contender':32} {'ms/token':>9} {'tokens/s':>9}")
    for name, value in summary["ms_per_token"].items():
        log(f"{name:32} {value:9.4f} {1000.0 / value:9.0f}")
    log("")
    for name, value in summary["ratios"].items():
        log(f"{name:44} {value['median']:.3f}  (rounds {value['low']:.3f}-{value['high']:.3f})")
    r = summary["ratios"]
    log("")
    log("goals: float32 b1 <= 0.85: {:.3f}; dynamic_int8 b1 <= 0.80: {:.3f}; "
        "b{} tokens/s >= ct2 int8 (ratio >= 1): dynamic_int8 {:.3f}".format(
            r["float32 b1 (kit / ct2 float32)"]["median"],
            r["dynamic_int8 b1 (kit / ct2 int8)"]["median"], batch,
            r[f"dynamic_int8 b{batch} tokens/s (kit / ct2 int8)"]["median"]))
    log(f"sources: {info['mean_source_tokens']:.1f} tokens on average; CTranslate2 "
        f"checks: {info['ct2_checks']}")


def parse_args(argv=None):
    from benchmarks.decode_speed import add_setup_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sentences", type=int, default=8,
                        help="sources per batch-1 segment (default 8)")
    parser.add_argument("--batch", type=int, default=32,
                        help="sources decoded at once (default 32, the default batch pair)")
    parser.add_argument("--verify-samples", type=int, default=64)
    parser.add_argument("--check-sources", type=int, default=50,
                        help="held-out sources CTranslate2 is checked on (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="keep the run, bundles and port here")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("source_length", "train_steps", "warmup_steps", "rounds", "sentences",
                 "batch", "verify_samples", "check_sources"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.verify_samples < args.batch:
        parser.error("--verify-samples must be at least --batch (the held-out sources "
                     "decoded in one batch)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    from benchmarks._common import set_up_then_time

    info, result = set_up_then_time(
        Path(__file__).resolve(), args.work_dir, "ct2-speed-", lambda work: setup(args, work),
        lambda info: {"setup": info, "args": {"rounds": args.rounds,
                                              "sentences": args.sentences,
                                              "batch": args.batch}})
    summary = summarize(result["rounds"], args.batch, info["bucket"])
    print_summary(summary, info, args.batch)
    if args.json:
        info = {key: value for key, value in info.items() if key != "sources"}
        Path(args.json).write_text(json.dumps({"setup": info, "summary": summary,
                                               "worker": result}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
