"""ms per decoded token: tensor-index stepping (the runtime's default) vs signature runners.

    python benchmarks/export_decode_speed.py BUNDLE_DIR [TEXT_FILE] [--threads N]

TEXT_FILE: one source a line (default: samples from the built-in dates data). Both
loops decode the same sources with the same file; the figure is the median over
sentences of (encode + every step) / tokens generated, after one warm-up sentence.
The two must also agree token for token.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.runtime import Bundle  # noqa: E402


def ms_per_token(bundle, sources, repeats):
    ids = [bundle.source_ids(text) for text in sources]
    bundle.greedy_ids(ids[0])
    timings, outputs = [], []
    for _ in range(repeats):
        for source in ids:
            start = time.perf_counter()
            tokens = bundle.greedy_ids(source)
            timings.append(1000.0 * (time.perf_counter() - start) / len(tokens))
            outputs.append(tokens)
    return statistics.median(timings), outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("texts", nargs="?")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.texts:
        sources = [line.rstrip("\n").split("\t")[0]
                   for line in open(args.texts, encoding="utf-8") if line.strip()][:200]
    else:
        from training.dates import generate_pairs

        sources = [source for source, _ in generate_pairs(200, seed=7)]
    results = {}
    for direct in (True, False):
        bundle = Bundle.load(args.bundle, num_threads=args.threads, direct=direct)
        results[direct] = ms_per_token(bundle, sources, args.repeats)
    assert results[True][1] == results[False][1], "the two loops disagree"
    cache = bundle.spec["signatures"]["decode_step"]["inputs"]["self_cache"]["shape"]
    cross = bundle.spec["signatures"]["decode_step"]["inputs"]["cross_cache"]["shape"]
    print(f"{args.bundle} ({bundle.recipe}), self_cache {cache}, cross_cache {cross}, "
          f"threads {args.threads or 'default'}, {len(sources)} sources x {args.repeats}")
    print(f"  tensor indices (cache copied buffer to buffer): {results[True][0]:.3f} ms/token")
    print(f"  signature runners (every input and output copied): {results[False][0]:.3f} ms/token")


if __name__ == "__main__":
    main()
