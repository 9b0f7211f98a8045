"""Decode speed: the exported bundle against re-running the whole model, side by side.

    python benchmarks/decode_speed.py [--preset base] [--source-length 40]
        [--target-length 64] [--train-steps 48] [--threads 1,2] [--rounds 15]
        [--sentences 2] [--work-dir DIR] [--json PATH]

Setup (untimed): `training.train.train` trains the preset on the built-in dates data
for `--train-steps` steps (one epoch of `--train-steps` x 64 pairs, the kit's compile
call, its warm-up schedule shortened to `--warmup-steps` so that a few steps give a
model whose outputs are not one repeated token), with S and T fixed to
`--source-length` and `--target-length`. `export.cli.export_run(run, "all", ...)` then
writes and verifies the float32, float16, dynamic_int8 and int8 bundles, and the same
weights are exported once more as a single-signature "re-run" file (below).

Each contender decodes the same sentences greedily to exactly T - 1 tokens (EOS does
not stop it), BOS first:

- a, Keras re-run: the TF tutorial's way. The whole model (encoder and decoder) runs
  on (source, the prefix so far padded to T) at every step under one `tf.function`
  with fixed shapes, and the logits at the current position are read; no KV cache.
- b, LiteRT re-run: that same function exported as ONE signature (fixed shapes,
  float32) and run by the LiteRT Interpreter (tensor indices), one full pass a step.
- c, the bundle (float32) through `kit.runtime.Bundle`'s step functions, in each
  runtime mode: compiled (CompiledModel, one buffer per cache bound as input and
  output), direct (Interpreter, each cache copied output -> input once a step),
  runner (signature runners, every input and output copied). Its time includes the
  sentence's `encode`.
- the float16, dynamic_int8 and int8 bundles, in compiled mode.

Probes, timed in the same rounds: the float32 `decode_step` invoke alone (compiled and
direct: the same call 63 times, nothing set or read), the host loop with a no-op step
(argmax and bookkeeping only), and the floor's rates: memory bandwidth (a numpy copy of
256 MB, counted as read + write bytes), a cache-resident copy of one step's bytes, a
(1, D) x (D, F) float32 matmul and a 1024^3 float32 matmul.

The floor of one float32 step: max(bytes / bandwidth, MACs / matmul rate), where the
bytes are the weights a step touches (the decoder's, minus the cross-attention K and V
projections that `encode` applies, plus the output projection and one embedding row)
and the caches it reads (all T self-attention slots and all S cross-attention slots of
every layer, as the fixed-shape graph does), and the MACs are the step's matrix
products, attention included. The rates are the large copy and the large matmul (the
most numpy reaches: the floor is a lower bound); the cache copy and the (1, D) matmul
are reported beside them.

Each thread count runs in its own worker process (LiteRT `num_threads`, TensorFlow's
intra- and inter-op threads and OpenBLAS all set to it), in which the contenders and
probes run in rounds, one segment each per round in a rotating order. A segment decodes
`--sentences` sentences. Per-token ms is the median over rounds; every ratio is the
median over rounds of the ratio within a round, which cancels changes in the machine's
load (the machine is shared). File sizes come from export's report.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from kit.runtime.recipes import RECIPES  # noqa: E402
from kit.runtime.steps import MODES  # noqa: E402

BATCH_SIZE = 64
BIG_COPY_BYTES = 256 << 20  # far beyond the 32 MB L3 of the machine measured
BIG_MATMUL = 1024
GOALS = {"vs_keras": 20.0, "vs_litert_rerun": 5.0, "floor": 2.5, "dynamic_int8_size": 0.30}


def log(message):
    print(message, flush=True)


def load_average():
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# -- setup: train, export, the re-run file ---------------------------------------------

def train_run(args, run_dir):
    """A finished run directory: `--train-steps` steps of the kit's training."""
    from training.options import TrainOptions
    from training.train import train

    return train(TrainOptions(
        data="default", out=str(run_dir), preset=args.preset, epochs=1,
        limit=args.train_steps * BATCH_SIZE, batch_size=BATCH_SIZE, seed=args.seed,
        warmup_steps=args.warmup_steps, max_source_length=args.source_length,
        max_target_length=args.target_length, eval_samples=args.verify_samples,
        # Timings need weights of the right shapes, not a model that learned the task.
        accept_trivial=True))


def rerun_function(model):
    """(source_ids (1, S), target_ids (1, T), position (1,)) -> logits (1, V) at
    `position`: the whole model on the padded prefix, the tutorial's step."""
    from keras import ops

    def rerun(source_ids, target_ids, position):
        logits = model((source_ids, target_ids), training=False)  # (1, T, V)
        return ops.take(logits[0], position, axis=0)  # (1, V)

    return rerun


def rerun_signature(config):
    import tensorflow as tf

    return [tf.TensorSpec((1, config.max_source_length), tf.int32, name="source_ids"),
            tf.TensorSpec((1, config.max_target_length), tf.int32, name="target_ids"),
            tf.TensorSpec((1,), tf.int32, name="position")]


def write_rerun_tflite(model, path):
    """The re-run function as one fixed-shape float32 signature, builtins only."""
    import keras
    import tensorflow as tf

    from kit.quiet import native_output_silenced

    rerun = rerun_function(model)
    with tempfile.TemporaryDirectory(prefix="decode-speed-") as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("rerun", lambda s, t, p: {"logits": rerun(s, t, p)},
                             input_signature=rerun_signature(model.config))
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["rerun"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with native_output_silenced((1, 2)):
            content = converter.convert()
    Path(path).write_bytes(content)
    return len(content)


def setup(args, work):
    """Trains, exports every recipe and the re-run file into `work`; returns what the
    workers need. An existing `work` with all of them is reused."""
    run_dir, bundles, rerun_path = work / "run", work / "bundles", work / "rerun.tflite"
    info_path = work / "setup.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("key") == setup_key(args):
            log(f"reusing the run and bundles in {work}")
            return info
        for stale in (run_dir, bundles):  # ours (setup.json says so), other settings
            shutil.rmtree(stale, ignore_errors=True)
    from export.cli import export_run
    from export.load import load_run
    from training.run_dir import read_run

    started = time.perf_counter()
    log(f"training {args.preset} for {args.train_steps} steps (S {args.source_length}, "
        f"T {args.target_length}) into {run_dir}")
    run = train_run(args, run_dir)
    trained = time.perf_counter()
    log(f"exporting every recipe into {bundles}")
    # Batch 1 is all this benchmark times: the (1, S) pair only.
    report = export_run(run_dir, "all", bundles, overwrite=True, samples=args.verify_samples,
                        progress=lambda message: None, batch_sizes=(1,))
    exported = time.perf_counter()
    loaded = load_run(read_run(run_dir))
    rerun_bytes = write_rerun_tflite(loaded.model, rerun_path)
    info = {
        "key": setup_key(args), "run_dir": str(run_dir), "bundles": str(bundles),
        "rerun_tflite": str(rerun_path), "rerun_bytes": rerun_bytes,
        "config": loaded.config.to_dict(), "run_metrics": run.get("metrics", {}),
        "seconds": {"train": trained - started, "export": exported - trained,
                    "rerun_export": time.perf_counter() - exported},
        "recipes": [{key: row.get(key) for key in ("recipe", "file_bytes", "size_ratio",
                                                   "token_exact", "max_logit_diff")}
                    for row in report["recipes"]],
        "weights": weight_counts(loaded.model),
    }
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def setup_key(args):
    return {name: getattr(args, name) for name in (
        "preset", "source_length", "target_length", "train_steps", "warmup_steps", "seed",
        "verify_samples")}


def weight_counts(model):
    """Elements of the weights one decode step reads, as kernels (matrices: what an
    int8 recipe stores in one byte) and others (biases, norms: float32 in every recipe).
    The encoder and the cross-attention K and V projections run in `encode` only; of
    the target embedding a step reads one row of each table."""
    D = model.config.model_dim
    kernels = others = 0
    for weight in model.weights:
        path, size = weight.path, int(np.prod(weight.shape))
        if "/target_embedding/" in path:
            others += D  # one row (a learned position table adds one more)
            continue
        if "/decoder_block_" in path:
            if "/cross_attention/qkv/key_" in path or "/cross_attention/qkv/value_" in path:
                continue
        elif "output_projection" not in path and "decoder_norm" not in path:
            continue  # the encoder's, and the source embedding
        if len(weight.shape) >= 2:
            kernels += size
        else:
            others += size
    return {"kernels": kernels, "others": others}


def step_cost(config, weights, weight_bytes_per_kernel=4):
    """(bytes read, multiply-accumulates) of one decode step of the exported graph."""
    c = config
    D, F, V = c["model_dim"], c["ff_dim"], c["target_vocab_size"]
    S, T, L = c["max_source_length"], c["max_target_length"], c["num_decoder_layers"]
    cache_bytes = 4 * L * 2 * D * (T + S)  # self K, V (all T slots) and cross K, V
    weight_bytes = weight_bytes_per_kernel * weights["kernels"] + 4 * weights["others"]
    macs = L * (4 * D * D + 2 * T * D + 2 * D * D + 2 * S * D + 2 * D * F) + D * V
    return {"weight_bytes": weight_bytes, "cache_bytes": cache_bytes,
            "bytes": weight_bytes + cache_bytes, "macs": macs}


# -- the worker: one thread count ------------------------------------------------------

def configure_threads(threads):
    """Before numpy's BLAS or TensorFlow start: every pool at `threads`."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Probes:
    """The floor's rates, on this machine, with `threads` threads."""

    def __init__(self, threads, step_bytes, model_dim, ff_dim):
        self.threads = threads
        count = BIG_COPY_BYTES // 4
        self.big = (np.ones(count, np.float32), np.empty(count, np.float32))
        small = max(1024, step_bytes // 4)
        self.small = (np.ones(small, np.float32), np.empty(small, np.float32))
        rng = np.random.default_rng(0)
        self.vector = rng.standard_normal((1, model_dim), dtype=np.float32)
        self.matrix = rng.standard_normal((model_dim, ff_dim), dtype=np.float32)
        self.square = rng.standard_normal((BIG_MATMUL, BIG_MATMUL), dtype=np.float32)

    def copy_rate(self, pair, repeats):
        """Bytes moved (read + write) per second by `threads` threads copying halves."""
        src, dst = pair
        parts = np.array_split(np.arange(src.size), self.threads)
        bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

        def work(lo, hi):
            for _ in range(repeats):
                np.copyto(dst[lo:hi], src[lo:hi])

        best = float("inf")
        for _ in range(3):
            threads = [threading.Thread(target=work, args=b) for b in bounds]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            best = min(best, time.perf_counter() - start)
        return 2 * src.nbytes * repeats / best

    def matmul_rate(self, a, b, repeats):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = min(best, time.perf_counter() - start)
        return a.shape[0] * a.shape[1] * b.shape[1] * repeats / best

    def measure(self):
        return {"copy_bytes_per_s": self.copy_rate(self.big, 1),
                "cache_copy_bytes_per_s": self.copy_rate(self.small, 20),
                "gemv_macs_per_s": self.matmul_rate(self.vector, self.matrix, 2000),
                "matmul_macs_per_s": self.matmul_rate(self.square, self.square, 2)}


def worker(spec_path, threads, result_path):
    configure_threads(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.get_logger().setLevel("ERROR")
    from export.load import load_run
    from kit.quiet import native_output_silenced
    from kit.runtime import Bundle
    from kit.runtime.interpreter import DirectSignature, interpreter_class
    from training.dates import generate_pairs
    from training.run_dir import read_run

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    info, args = spec["setup"], spec["args"]
    config = info["config"]
    T = config["max_target_length"]
    steps_per_sentence = T - 1

    bundles = {}
    for recipe in RECIPES:
        for mode in (MODES if recipe == "float32" else ("compiled",)):
            bundles[recipe, mode] = Bundle.load(Path(info["bundles"]) / recipe,
                                                num_threads=threads, mode=mode)
    reference = bundles["float32", "compiled"]
    bos = reference.bos_id
    sources = [np.array([reference.source_ids(text)], np.int32)  # (1, S)
               for text, _ in generate_pairs(args["sentences"], seed=7)]

    # a: the tutorial's re-run in Keras, compiled.
    model = load_run(read_run(info["run_dir"])).model
    keras_rerun = tf.function(rerun_function(model), input_signature=rerun_signature(model.config))

    def rerun_loop(run_step):
        def decode(source):
            target = np.zeros((1, T), np.int32)
            target[0, 0] = bos
            position = np.zeros((1,), np.int32)
            out = []
            for p in range(steps_per_sentence):
                position[0] = p
                token = int(np.argmax(run_step(source, target, position)))
                out.append(token)
                target[0, p + 1] = token
            return out
        return decode

    def keras_step(source, target, position):
        return keras_rerun(source, target, position).numpy()

    # b: the re-run file on the LiteRT Interpreter, through tensor indices.
    with native_output_silenced():
        interpreter = interpreter_class()(model_path=info["rerun_tflite"], num_threads=threads)
        interpreter.allocate_tensors()
    rerun_file = DirectSignature(interpreter, "rerun")

    def litert_step(source, target, position):
        rerun_file.set("source_ids", source)
        rerun_file.set("target_ids", target)
        rerun_file.set("position", position)
        rerun_file.invoke()
        return rerun_file.get("logits")

    def bundle_loop(bundle):
        steps = bundle.steps  # the step functions: greedy_ids would stop at EOS

        def decode(source):
            steps.start(source)
            token, out = bos, []
            for p in range(steps_per_sentence):
                token = int(np.argmax(steps.step(token, p)))
                out.append(token)
            return out
        return decode

    decoders = {"a: Keras re-run (tf.function)": rerun_loop(keras_step),
                "b: LiteRT re-run (1 signature)": rerun_loop(litert_step)}
    for mode in MODES:
        decoders[f"c: bundle float32, {mode}"] = bundle_loop(bundles["float32", mode])
    for recipe in RECIPES[1:]:
        decoders[f"bundle {recipe}, compiled"] = bundle_loop(bundles[recipe, "compiled"])

    # Probes: parts of a float32 step, each repeated once per decoded token.
    compiled_steps = bundles["float32", "compiled"].steps
    direct_steps = bundles["float32", "direct"].steps
    fixed_logits = np.zeros(config["target_vocab_size"], np.float32)

    def invoke_compiled(source):
        compiled_steps.start(source)
        for _ in range(steps_per_sentence):
            compiled_steps.invoke()

    def invoke_direct(source):
        direct_steps.start(source)
        direct_steps.step(bos, 0)  # sets token and position once
        for _ in range(steps_per_sentence):
            direct_steps.invoke()

    def host_loop(source):
        token, out = bos, []
        for _ in range(steps_per_sentence):
            token = int(np.argmax(fixed_logits))
            out.append(token)
        return out

    probes_of_steps = {"invoke alone, float32 compiled": invoke_compiled,
                       "invoke alone, float32 direct": invoke_direct,
                       "host loop, no-op step": host_loop}
    cost = step_cost(config, info["weights"])
    floor_probes = Probes(threads, cost["bytes"], config["model_dim"], config["ff_dim"])

    # Warm-up (traces the tf.function), and the tokens each contender decodes.
    tokens = {}
    for name, decode in decoders.items():
        tokens[name] = [decode(source) for source in sources]
    for probe in probes_of_steps.values():
        probe(sources[0])
    floor_probes.measure()
    agreement = {name: float(np.mean([a == b for got, ref in zip(found, tokens[
        "c: bundle float32, compiled"]) for a, b in zip(got, ref)]))
        for name, found in tokens.items()}

    names = list(decoders) + list(probes_of_steps) + ["floor probes"]
    per_round = {name: [] for name in names if name != "floor probes"}
    rates = []
    loads = [os.getloadavg()[0]]
    for round_index in range(args["rounds"]):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if name == "floor probes":
                rates.append(floor_probes.measure())
                continue
            run = decoders.get(name) or probes_of_steps[name]
            start = time.perf_counter()
            for source in sources:
                run(source)
            seconds = time.perf_counter() - start
            per_round[name].append(1000.0 * seconds / (len(sources) * steps_per_sentence))
        loads.append(os.getloadavg()[0])
        log(f"  threads {threads}: round {round_index + 1}/{args['rounds']} done, "
            f"load average {load_average()}")

    result = {"threads": threads, "per_round_ms": per_round, "rates": rates,
              "distinct_tokens": len({t for row in tokens["c: bundle float32, compiled"]
                                      for t in row}),
              "token_agreement_with_float32_compiled": agreement,
              "load_average_1min": loads, "steps_per_sentence": steps_per_sentence,
              "sentences": len(sources)}
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


# -- summary ---------------------------------------------------------------------------

def ratio_median(numerators, denominators):
    ratios = [a / b for a, b in zip(numerators, denominators)]
    return statistics.median(ratios), [min(ratios), max(ratios)]


def summarize(info, result):
    ms = result["per_round_ms"]
    config = info["config"]
    a, b = ms["a: Keras re-run (tf.function)"], ms["b: LiteRT re-run (1 signature)"]
    f32 = ms["c: bundle float32, compiled"]
    # Floors per round: ms of the fastest conceivable step with that round's rates.
    rounds = result["rates"]
    floors = {}
    for recipe in RECIPES:
        cost = step_cost(config, info["weights"], 1 if "int8" in recipe else 4)
        floors[recipe] = {
            **cost,
            "memory_ms": [1000.0 * cost["bytes"] / r["copy_bytes_per_s"] for r in rounds],
            "cache_memory_ms": [1000.0 * cost["bytes"] / r["cache_copy_bytes_per_s"]
                                for r in rounds],
            "compute_ms": [1000.0 * cost["macs"] / r["matmul_macs_per_s"] for r in rounds],
            "gemv_compute_ms": [1000.0 * cost["macs"] / r["gemv_macs_per_s"] for r in rounds],
        }
        floors[recipe]["floor_ms"] = [max(m, c) for m, c in zip(floors[recipe]["memory_ms"],
                                                               floors[recipe]["compute_ms"])]
        # The same with the cache-resident copy rate: the step's few MB stay in L2/L3
        # between steps, so the large copy's (DRAM) rate may not bound it.
        floors[recipe]["cache_floor_ms"] = [
            max(m, c) for m, c in zip(floors[recipe]["cache_memory_ms"],
                                      floors[recipe]["compute_ms"])]
    sizes = {row["recipe"]: row for row in info["recipes"]}
    rows = []
    for name, values in ms.items():
        row = {"name": name, "ms_per_token": statistics.median(values),
               "ms_range": [min(values), max(values)]}
        if name.startswith(("c:", "bundle", "a:", "b:")):
            row["x_vs_keras"], row["x_vs_keras_range"] = ratio_median(a, values)
            row["x_vs_litert_rerun"], row["x_vs_litert_rerun_range"] = ratio_median(b, values)
            row["vs_float32_compiled"], _ = ratio_median(values, f32)
            row["token_agreement"] = result["token_agreement_with_float32_compiled"][name]
        recipe = next((r for r in RECIPES if f"bundle {r}," in name), None)
        if recipe:
            row["recipe"] = recipe
            row["vs_floor"], row["vs_floor_range"] = ratio_median(
                values, floors[recipe]["floor_ms"])
            row["vs_cache_floor"], _ = ratio_median(values, floors[recipe]["cache_floor_ms"])
            row["file_bytes"] = sizes[recipe]["file_bytes"]
            row["size_ratio"] = sizes[recipe]["size_ratio"]
        if name.startswith("b:"):
            row["file_bytes"] = info["rerun_bytes"]
        rows.append(row)
    median_rates = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    f32_floor = floors["float32"]
    breakdown = {
        "total_ms": statistics.median(f32),
        "invoke_ms": statistics.median(ms["invoke alone, float32 compiled"]),
        "host_loop_ms": statistics.median(ms["host loop, no-op step"]),
        "direct_total_ms": statistics.median(ms["c: bundle float32, direct"]),
        "direct_invoke_ms": statistics.median(ms["invoke alone, float32 direct"]),
    }
    breakdown["rest_ms"] = (breakdown["total_ms"] - breakdown["invoke_ms"]
                            - breakdown["host_loop_ms"])
    # Shares as medians of ratios within a round (the medians above come from
    # different rounds, and can disagree on a loaded machine).
    for part, name in (("invoke", "invoke alone, float32 compiled"),
                       ("host_loop", "host loop, no-op step")):
        breakdown[f"{part}_share"] = ratio_median(ms[name], f32)[0]
        breakdown[f"direct_{part}_share"] = ratio_median(
            ms[name.replace("compiled", "direct")], ms["c: bundle float32, direct"])[0]
    breakdown["direct_rest_ms"] = (breakdown["direct_total_ms"] - breakdown["direct_invoke_ms"]
                                   - breakdown["host_loop_ms"])
    return {"threads": result["threads"], "rows": rows, "rates": median_rates,
            "floors": {recipe: {key: (statistics.median(v) if isinstance(v, list) else v)
                                for key, v in floor.items()}
                       for recipe, floor in floors.items()},
            "float32_vs_floor": ratio_median(f32, f32_floor["floor_ms"])[0],
            "float32_vs_cache_floor": ratio_median(f32, f32_floor["cache_floor_ms"])[0],
            "distinct_tokens": result["distinct_tokens"],
            "invoke_vs_floor": ratio_median(ms["invoke alone, float32 compiled"],
                                            f32_floor["floor_ms"])[0],
            "breakdown": breakdown,
            "load_average_1min": [min(result["load_average_1min"]),
                                  max(result["load_average_1min"])],
            "rounds": len(a)}


def print_summary(summary, out=print):
    out(f"\nthreads {summary['threads']}: {summary['rounds']} rounds, load average (1 min) "
        f"{summary['load_average_1min'][0]:.2f}-{summary['load_average_1min'][1]:.2f}")
    header = (f"{'contender':<34} {'ms/token':>8} {'x vs a':>7} {'(rounds)':>11} "
              f"{'x vs b':>7} {'(rounds)':>11} {'/ f32':>5} {'/ floor':>7} {'size':>6} "
              f"{'same tok':>8}")
    out(header)
    out("-" * len(header))
    for r in summary["rows"]:
        line = f"{r['name']:<34} {r['ms_per_token']:8.3f}"
        if "x_vs_keras" in r:
            (ka, kb), (la, lb) = r["x_vs_keras_range"], r["x_vs_litert_rerun_range"]
            line += (f" {r['x_vs_keras']:6.2f}x {ka:5.1f}-{kb:<5.1f} "
                     f"{r['x_vs_litert_rerun']:6.2f}x {la:5.1f}-{lb:<5.1f} "
                     f"{r['vs_float32_compiled']:5.2f}")
            line += f" {r['vs_floor']:6.2f}x" if "vs_floor" in r else " " * 8
            line += f" {r['size_ratio']:5.2f}x" if "size_ratio" in r else " " * 7
            line += f" {r['token_agreement']:7.0%}"
        out(line)
    f, rates, b = summary["floors"]["float32"], summary["rates"], summary["breakdown"]
    out(f"float32 step: {f['weight_bytes'] / 1e6:.2f} MB of weights + {f['cache_bytes'] / 1e6:.2f} "
        f"MB of KV cache read, {f['macs'] / 1e6:.2f} M multiply-accumulates")
    out(f"rates: copy {rates['copy_bytes_per_s'] / 1e9:.1f} GB/s (256 MB, read + write), "
        f"cache-resident copy {rates['cache_copy_bytes_per_s'] / 1e9:.1f} GB/s, "
        f"(1,D)x(D,F) {rates['gemv_macs_per_s'] / 1e9:.2f} GMAC/s, "
        f"1024^3 {rates['matmul_macs_per_s'] / 1e9:.1f} GMAC/s")
    out(f"floor: memory {f['memory_ms']:.3f} ms (cache-resident {f['cache_memory_ms']:.3f}), "
        f"compute {f['compute_ms']:.3f} ms ((1,D) rate {f['gemv_compute_ms']:.3f}); "
        f"floor = max(memory, compute) = {f['floor_ms']:.3f} ms; float32 compiled "
        f"{summary['float32_vs_floor']:.2f}x the floor, its invoke alone "
        f"{summary['invoke_vs_floor']:.2f}x; with the cache-resident rate the floor is "
        f"{f['cache_floor_ms']:.3f} ms and float32 compiled "
        f"{summary['float32_vs_cache_floor']:.2f}x it")
    out(f"float32 compiled per token: {b['total_ms']:.3f} ms = invoke {b['invoke_ms']:.3f} + "
        f"host loop {b['host_loop_ms']:.3f} + the rest (encode per token, buffer writes "
        f"and reads) {b['rest_ms']:.3f}; direct: {b['direct_total_ms']:.3f} = invoke "
        f"{b['direct_invoke_ms']:.3f} + loop + {b['direct_rest_ms']:.3f} (cache copies, "
        f"set/get, encode). Within a round: invoke {b['invoke_share']:.0%} and host loop "
        f"{b['host_loop_share']:.1%} of compiled's time, invoke {b['direct_invoke_share']:.0%} "
        f"of direct's")
    out(f"decoded tokens: {summary['distinct_tokens']} distinct ids among the float32 "
        f"outputs")


def goals(summaries, info):
    """One line per goal: met or missed, by how much."""
    lines = []
    for s in summaries:
        for r in s["rows"]:
            if r["name"].startswith("c:"):
                lines.append(
                    f"threads {s['threads']}, {r['name'][3:]}: {r['x_vs_keras']:.1f}x vs a "
                    f"(goal {GOALS['vs_keras']:.0f}x: "
                    f"{'met' if r['x_vs_keras'] >= GOALS['vs_keras'] else 'missed'}), "
                    f"{r['x_vs_litert_rerun']:.1f}x vs b (goal {GOALS['vs_litert_rerun']:.0f}x: "
                    f"{'met' if r['x_vs_litert_rerun'] >= GOALS['vs_litert_rerun'] else 'missed'})")
        ratio = s["float32_vs_floor"]
        cache = s["float32_vs_cache_floor"]
        lines.append(f"threads {s['threads']}: float32 compiled {ratio:.2f}x the floor (goal "
                     f"{GOALS['floor']}x: {'met' if ratio <= GOALS['floor'] else 'missed'}); "
                     f"{cache:.2f}x the cache-resident floor "
                     f"({'met' if cache <= GOALS['floor'] else 'missed'} against it)")
    size = {row["recipe"]: row["size_ratio"] for row in info["recipes"]}["dynamic_int8"]
    lines.append(f"dynamic_int8 file {size:.3f}x float32 (goal {GOALS['dynamic_int8_size']}x: "
                 f"{'met' if size <= GOALS['dynamic_int8_size'] else 'missed'})")
    return lines


def add_setup_arguments(parser):
    """The options `train_run` reads: the preset, S, T and the short training."""
    from kit.models import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), default="base")
    parser.add_argument("--source-length", type=int, default=40, help="S (default 40)")
    parser.add_argument("--target-length", type=int, default=64,
                        help="T (default 64): each sentence decodes T - 1 tokens")
    parser.add_argument("--train-steps", type=int, default=48)
    parser.add_argument("--warmup-steps", type=int, default=100,
                        help="the schedule's warm-up for the short training (default 100)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts, one worker each (default 1,2)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sentences", type=int, default=2, help="sentences per segment")
    parser.add_argument("--verify-samples", type=int, default=20,
                        help="sentences export verifies each bundle on (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="keep the run and bundles here (reused when "
                                           "present with the same settings)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--worker", nargs=3, metavar=("SPEC", "THREADS", "RESULT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    for name in ("source_length", "train_steps", "warmup_steps", "rounds", "sentences",
                 "verify_samples"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.target_length < 3:
        parser.error(f"--target-length must be at least 3, got {args.target_length}")
    try:
        args.thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not all(1 <= t <= (os.cpu_count() or 1) for t in args.thread_counts):
        parser.error(f"--threads must lie in 1 .. {os.cpu_count()}, got {args.threads!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        spec, threads, result = args.worker
        worker(spec, int(threads), result)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log(f"load average {load_average()} at the start")
    with tempfile.TemporaryDirectory(prefix="decode-speed-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        info = setup(args, work)
        log(f"setup: {', '.join(f'{k} {v:.0f} s' for k, v in info['seconds'].items())}; "
            f"load average {load_average()}")
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps({"setup": info, "args": {
            "rounds": args.rounds, "sentences": args.sentences}}), encoding="utf-8")
        summaries = []
        for threads in args.thread_counts:
            result_path = Path(tmp) / f"result-{threads}.json"
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                            str(spec_path), str(threads), str(result_path)], check=True)
            result = json.loads(result_path.read_text(encoding="utf-8"))
            summaries.append({**summarize(info, result), "raw": result})
    c = info["config"]
    print(f"\n{args.preset} preset (L {c['num_decoder_layers']}, D {c['model_dim']}, H "
          f"{c['num_heads']}, F {c['ff_dim']}, V {c['target_vocab_size']}), S "
          f"{c['max_source_length']}, T {c['max_target_length']}: each sentence decoded to "
          f"{c['max_target_length'] - 1} tokens; {args.sentences} sentence(s) a segment; "
          f"trained {args.train_steps} steps (val loss "
          f"{info['run_metrics'].get('val_loss', float('nan')):.3f}, token accuracy "
          f"{info['run_metrics'].get('val_token_accuracy', float('nan')):.3f})")
    for summary in summaries:
        print_summary(summary)
    print("\nx vs a / x vs b: median over rounds of (a's or b's ms) / (its ms) in the same "
          "round (rounds: range); / f32: against float32 compiled; / floor: its ms over "
          "its recipe's floor; size: file against float32; same tok: tokens equal to "
          "float32 compiled's")
    print("\nfile sizes: " + ", ".join(
        f"{row['recipe']} {row['file_bytes'] / 1e6:.2f} MB ({row['size_ratio']:.3f}x)"
        for row in info["recipes"]) + f", re-run file {info['rerun_bytes'] / 1e6:.2f} MB")
    for line in goals(summaries, info):
        print(line)
    print(f"load average {load_average()} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": {k: v for k, v in vars(args).items() if k != "worker"},
             "setup": info, "results": summaries, "goals": goals(summaries, info)},
            indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
