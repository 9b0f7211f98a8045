"""Builds the tasks' files and runs the kit on them exactly as a new user would:

    python -m kit train    --data tsv:DIR/train.tsv --out DIR/run
    python -m kit export   DIR/run --recipe dynamic_int8 --out DIR/bundle
    python -m kit evaluate DIR/bundle --data tsv:DIR/test.tsv
    python -m kit evaluate DIR/run    --data tsv:DIR/test.tsv

then reads the figures that `evaluate` prints ("exact_match 92.1, cer 1.3, ...,
sources N" on stdout) into WORKDIR/results.json and a markdown table.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.tasks.common import (
    MissingPackage,
    score,
    score_predictions,
    statistics_of,
    write_tsv,
)
from kit.files import atomic_write
from kit.tsv import read_tsv

ROOT = Path(__file__).resolve().parents[2]  # the repository: where `python -m kit` runs
RECIPE = "dynamic_int8"


class CommandFailed(RuntimeError):
    """A kit command exited non-zero; the message is its last line (its error line)."""


def build_task(task, directory, size, seed=0):
    """Writes DIRECTORY/train.tsv and test.tsv; returns their statistics and the
    baselines' scores. Raises MissingPackage when the task's package is absent."""
    task.check_installed()
    train_size, test_size = task.sizes[size]
    train, test = task.build(train_size, test_size, seed)
    sources = {source for source, _ in train}
    if any(source in sources for source, _ in test):
        raise AssertionError(f"{task.name}: a test source is also in training")
    directory.mkdir(parents=True, exist_ok=True)
    write_tsv(directory / "train.tsv", train)
    write_tsv(directory / "test.tsv", test)
    baselines = {name: score(predict, test)
                 for name, predict in task.baselines(train, test).items()}
    return {"stats": statistics_of(train, test), "baselines": baselines}


def parse_metrics(stdout):
    """{name: value} from evaluate's line 'exact_match 92.1, cer 1.3, ..., sources 100'."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("exact_match "):
            values = {}
            for item in line.split(", "):
                name, value = item.rsplit(" ", 1)
                values[name] = int(value) if name == "sources" else float(value)
            return values
    raise ValueError(f"no metrics line in the output of evaluate: {stdout[-300:]!r}")


def kit_command(arguments, log):
    """Runs `python -m kit ARGUMENTS` from the repository root; its output goes to the
    log file and to our stderr as it comes. Returns (stdout text, seconds)."""
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as record:
        process = subprocess.Popen([sys.executable, "-m", "kit", *arguments], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, encoding="utf-8", errors="replace")
        lines = []
        for line in process.stdout:
            lines.append(line)
            record.write(line)
            print(f"  | {line}", end="", file=sys.stderr, flush=True)
        process.wait()
    if process.returncode:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        raise CommandFailed(f"python -m kit {arguments[0]} exited {process.returncode}: {last}")
    return "".join(lines), time.monotonic() - started


def run_kit(directory, train_arguments=(), also_scored=()):
    """Train, export, evaluate the bundle and the run; {figures} for results.json.

    The bundle's outputs are kept in DIRECTORY/predictions.tsv and scored again under
    each (name, normalize) of `also_scored`. `train_arguments` is for the tests only (a
    tiny preset, one epoch): the benchmark itself passes nothing beyond --data and --out."""
    run, bundle, logs = directory / "run", directory / "bundle", directory / "logs"
    for old in (run, bundle):  # a previous run would be resumed, not measured
        shutil.rmtree(old, ignore_errors=True)
    logs.mkdir(exist_ok=True)
    train_tsv, test_tsv = f"tsv:{directory / 'train.tsv'}", f"tsv:{directory / 'test.tsv'}"
    _, train_seconds = kit_command(
        ["train", "--data", train_tsv, "--out", str(run), *train_arguments], logs / "train.log")
    _, export_seconds = kit_command(
        ["export", str(run), "--recipe", RECIPE, "--out", str(bundle)], logs / "export.log")
    predictions = directory / "predictions.tsv"
    bundle_out, _ = kit_command(["evaluate", str(bundle), "--data", test_tsv,
                                 "--output", str(predictions)], logs / "evaluate_bundle.log")
    run_out, _ = kit_command(["evaluate", str(run), "--data", test_tsv],
                             logs / "evaluate_run.log")
    test, _ = read_tsv(test_tsv, directory / "test.tsv")  # write_tsv made it: no bad line
    return {"train_seconds": round(train_seconds, 1),
            "export_seconds": round(export_seconds, 1),
            "bundle": parse_metrics(bundle_out), "run": parse_metrics(run_out),
            "bundle_also": {name: score_predictions(predictions, test, normalize)
                            for name, normalize in also_scored}}


def run_tasks(tasks, workdir, size, build_only=False, train_arguments=()):
    """Builds (and unless `build_only` runs) each task; writes WORKDIR/results.json and
    results.md; returns the results dict."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"size": size, "recipe": RECIPE, "tasks": []}
    for task in tasks:
        entry = {"task": task.name, "shape": task.shape, "package": task.package,
                 "licence": task.licence, "kind": task.kind, "published": task.published}
        results["tasks"].append(entry)
        directory = workdir / task.name
        try:
            entry.update(build_task(task, directory, size))
        except MissingPackage as missing:
            print(missing, file=sys.stderr)
            entry["skipped"] = str(missing)
            continue
        print(describe(entry), file=sys.stderr)
        if build_only:
            continue
        try:
            entry["kit"] = run_kit(directory, train_arguments, task.also_scored)
        except CommandFailed as failure:
            print(f"{task.name}: {failure}", file=sys.stderr)
            entry["error"] = str(failure)
    atomic_write(workdir / "results.json", json.dumps(results, indent=1, ensure_ascii=False))
    table = markdown_table(results)
    atomic_write(workdir / "results.md", table)
    return results


def describe(entry):
    """A few lines of a built task: sizes, medians, distinct words, baselines."""
    stats = entry["stats"]
    lines = [f"{entry['task']}: {stats['train_pairs']} train pairs "
             f"({stats['train_sources']} sources), {stats['test_pairs']} test pairs "
             f"({stats['test_sources']} sources)"]
    for side in ("source", "target"):
        s = stats[side]
        lines.append(f"  {side}: median {s['median_chars']} chars, {s['median_words']} words "
                     f"(mean {s['mean_chars']} chars); {s['distinct_words']} distinct words")
    for name, metrics in entry["baselines"].items():
        lines.append(f"  baseline {name}: " + ", ".join(
            f"{key} {value:.1f}" for key, value in metrics.items()))
    if entry["published"]:
        lines.append(f"  published: {entry['published']}")
    return "\n".join(lines)


def reference_text(entry):
    """The best baseline's headline figures (chrF for sentences, exact for words)."""
    key = "chrf" if entry["kind"] == "sentence" else "exact_match"
    name, metrics = max(entry["baselines"].items(), key=lambda item: item[1][key])
    if entry["kind"] == "sentence":
        return f"{name}: BLEU {metrics['bleu']:.1f}, chrF {metrics['chrf']:.1f}"
    return (f"{name}: exact {metrics['exact_match']:.1f}, CER {metrics['cer']:.1f}, "
            f"WER {metrics['wer']:.1f}")


def markdown_table(results):
    """The table for benchmarks/README.md: the bundle's figures (the device's), with the
    Keras run's exact match beside them."""
    header = ("| task | shape | train pairs | reference (best baseline) | exact % (bundle / run) "
              "| CER % | WER % (PER for phones) | BLEU | chrF | train time |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for entry in results["tasks"]:
        if "skipped" in entry:
            rows.append(f"| {entry['task']} | {entry['shape']} | skipped: package missing "
                        "| | | | | | | |")
            continue
        head = (f"| {entry['task']} | {entry['shape']} | {entry['stats']['train_pairs']:,} "
                f"| {reference_text(entry)} ")
        kit = entry.get("kit")
        if kit is None:
            rows.append(head + f"| {entry.get('error', 'not run')} | | | | | |")
            continue
        bundle, run = kit["bundle"], kit["run"]
        rows.append(head + f"| {bundle['exact_match']:.1f} / {run['exact_match']:.1f} "
                    f"| {bundle['cer']:.1f} | {bundle['wer']:.1f} | {bundle['bleu']:.1f} "
                    f"| {bundle['chrf']:.1f} | {kit['train_seconds'] / 60:.1f} min |")
    notes = "".join(f"\n- {entry['task']}: {entry['published']}"
                    for entry in results["tasks"] if entry.get("published"))
    also = "".join(
        f"\n- {entry['task']}, {name}: exact {m['exact_match']:.1f}, CER {m['cer']:.1f}, "
        f"WER {m['wer']:.1f}"
        for entry in results["tasks"] if entry.get("kit")
        for name, m in entry["kit"].get("bundle_also", {}).items())
    return (header + "\n".join(rows) + "\n"
            + (f"\nThe bundle, scored again:{also}\n" if also else "")
            + (f"\nPublished references:{notes}\n" if notes else ""))
