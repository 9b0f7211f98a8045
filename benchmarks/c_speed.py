"""The C decode loop (examples/c) against the Python runtime, side by side on one thread.

    python benchmarks/c_speed.py [--preset base] [--source-length 40]
        [--target-length 64] [--train-steps 48] [--rounds 9] [--recipes all]
        [--work-dir DIR] [--json PATH]

Setup (untimed, with TensorFlow): `decode_speed.train_run` trains the preset on the
built-in dates data for `--train-steps` steps with S and T fixed; `export.cli.export_run`
writes and verifies the bundles of `--recipes` (default all four) with the (1, S)
signature pair only (the pair both loops use); CMake builds examples/c (Release, -O3)
against the installed ai-edge-litert's libLiteRt.so.

Timing runs in a worker process that imports numpy and the kit's runtime only. Both
contenders decode the run's held-out source texts greedily until EOS or T - 1 tokens,
with one CPU thread (LiteRT `num_threads=1` in both), tokenizing, `encode` and every
`decode_step` included, loading excluded:

- Python: `kit.runtime.Bundle` (the CompiledModel loop, one buffer per cache bound as
  input and output), `greedy_ids(source_ids(text))` for each text, timed around them;
- C: `kit_decode --threads 1 --ids --escaped --time`, which reads the texts on standard input
  and reports the time it spent decoding them (its load is not counted).

Before any timing, the C program's ids are checked to equal the Python runtime's on
every source of every recipe. A round runs every contender once, in an order rotated
each round; ms per token is the median over rounds, and the C / Python ratio is the
median over rounds of the ratio within a round, which cancels the machine's drifts.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
GOAL = 1.0  # C / Python time per token: at most the Python runtime's
_TIMING = re.compile(r"kit_decode: \d+ lines, (\d+) tokens in ([0-9.]+) s")


def log(message):
    print(message, flush=True)


def build(build_dir):
    """Builds examples/c (Release) against this Python's ai-edge-litert; its path."""
    for command in (["cmake", "-S", str(REPO / "examples" / "c"), "-B", str(build_dir),
                     "-DCMAKE_BUILD_TYPE=Release", "-DKIT_WERROR=ON",
                     f"-DKIT_PYTHON={sys.executable}"],
                    ["cmake", "--build", str(build_dir)]):
        subprocess.run(command, check=True, capture_output=True)
    return build_dir / "kit_decode"


def setup(args, work):
    """Trains, exports and builds into `work`; returns what the worker needs."""
    from benchmarks.decode_speed import train_run
    from export.cli import export_run
    from training.run_dir import TEST_SAMPLE, read_pairs

    run_dir, bundles = work / "run", work / "bundles"
    started = time.perf_counter()
    log(f"training {args.preset} for {args.train_steps} steps (S {args.source_length}, "
        f"T {args.target_length})")
    train_run(args, run_dir)
    log(f"exporting {args.recipes} (the (1, S) pair)")
    # One recipe is written at `out` itself, all four in a directory each under it.
    export_run(run_dir, args.recipes, bundles if args.recipes == "all" else
               bundles / args.recipes, overwrite=True, samples=args.verify_samples,
               batch_sizes=(1,), progress=lambda message: None)
    log("building examples/c")
    program = build(work / "c")
    texts = [source for source, _ in read_pairs(run_dir / TEST_SAMPLE)][:args.texts]
    return {"bundles": str(bundles), "program": str(program), "texts": texts,
            "setup_seconds": time.perf_counter() - started}


def run_c(program, bundle_dir, texts):
    """(ids per text, tokens, seconds the program spent decoding)."""
    from kit.runtime.flat_files import vocabulary_text  # --escaped: the same escapes

    done = subprocess.run([program, "--threads", "1", "--ids", "--escaped", "--time",
                           bundle_dir], input=vocabulary_text(texts).encode("utf-8"),
                          capture_output=True, check=True)
    timing = _TIMING.search(done.stderr.decode("utf-8", "replace"))
    ids = [[int(t) for t in line.split()] for line in done.stdout.decode().splitlines()]
    return ids, int(timing.group(1)), float(timing.group(2))


def worker(spec_path, result_path):
    from kit.runtime import Bundle
    from kit.runtime.recipes import RECIPES

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    info, rounds_wanted = spec["setup"], spec["rounds"]
    texts, program = info["texts"], info["program"]
    bundles = {recipe: Bundle.load(Path(info["bundles"]) / recipe, num_threads=1)
               for recipe in RECIPES if (Path(info["bundles"]) / recipe).is_dir()}

    def python_run(bundle):
        start = time.perf_counter()
        ids = [[int(t) for t in bundle.greedy_ids(bundle.source_ids(text))] for text in texts]
        return ids, sum(map(len, ids)), time.perf_counter() - start

    def c_run(recipe):
        return run_c(program, str(Path(info["bundles"]) / recipe), texts)

    contenders = {}
    for recipe, bundle in bundles.items():
        contenders[f"python {recipe}"] = lambda bundle=bundle: python_run(bundle)
        contenders[f"c {recipe}"] = lambda recipe=recipe: c_run(recipe)
    checks = {}
    for recipe in bundles:  # also the warm-up
        python_ids = contenders[f"python {recipe}"]()[0]
        c_ids = contenders[f"c {recipe}"]()[0]
        checks[recipe] = {"equal": sum(a == b for a, b in zip(python_ids, c_ids)),
                          "total": len(texts), "tokens": sum(map(len, python_ids))}
        log(f"{recipe}: C ids equal to the Python runtime's on "
            f"{checks[recipe]['equal']}/{len(texts)}")
    names = list(contenders)
    rounds = []
    for r in range(rounds_wanted):
        order = names[r % len(names):] + names[:r % len(names)]
        timings = {}
        for name in order:
            _, tokens, seconds = contenders[name]()
            timings[name] = 1000.0 * seconds / tokens
        rounds.append(timings)
        log(f"round {r + 1}/{rounds_wanted}: " + ", ".join(
            f"{name} {timings[name]:.4f}" for name in names))
    Path(result_path).write_text(json.dumps({
        "rounds": rounds, "checks": checks,
        "modes": {recipe: bundle.mode for recipe, bundle in bundles.items()}}),
        encoding="utf-8")


def summarize(rounds):
    """Median ms per token of each contender, and C / Python per recipe."""
    names = list(rounds[0])
    ms = {name: statistics.median(r[name] for r in rounds) for name in names}
    ratios = {}
    for name in names:
        if name.startswith("c "):
            recipe = name[2:]
            within = [r[name] / r[f"python {recipe}"] for r in rounds]
            ratios[recipe] = {"median": statistics.median(within), "min": min(within),
                              "max": max(within)}
    return {"ms_per_token": ms, "c_over_python": ratios}


def print_summary(summary, result):
    log("\nms per token, 1 thread (median over rounds); C / Python (median, range):")
    for recipe, ratio in summary["c_over_python"].items():
        ms = summary["ms_per_token"]
        check = result["checks"][recipe]
        log(f"  {recipe:13s} Python {ms[f'python {recipe}']:.4f}  C {ms[f'c {recipe}']:.4f}"
            f"  C/Python {ratio['median']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f})"
            f"  ids equal {check['equal']}/{check['total']}")
    met = all(r["median"] <= GOAL for r in summary["c_over_python"].values())
    log(f"goal: C time per token <= {GOAL} x Python's: {'met' if met else 'missed'}")


def parse_args(argv=None):
    from benchmarks.decode_speed import add_setup_arguments
    from kit.runtime.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--recipes", choices=("all", *RECIPES), default="all",
                        help="the bundles to time (default all four)")
    parser.add_argument("--verify-samples", type=int, default=64,
                        help="held-out sources verified and decoded (default 64)")
    parser.add_argument("--texts", type=int, default=1000,
                        help="held-out source texts decoded (default 1000, all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="keep the run, bundles and build here")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("source_length", "target_length", "train_steps", "warmup_steps", "rounds",
                 "verify_samples", "texts"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    from benchmarks._common import set_up_then_time

    info, result = set_up_then_time(Path(__file__).resolve(), args.work_dir, "c-speed-",
                                    lambda work: setup(args, work),
                                    lambda info: {"setup": info, "rounds": args.rounds})
    summary = summarize(result["rounds"])
    print_summary(summary, result)
    if args.json:
        info = {key: value for key, value in info.items() if key != "texts"}
        Path(args.json).write_text(json.dumps({"setup": info, "summary": summary,
                                               "worker": result}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
