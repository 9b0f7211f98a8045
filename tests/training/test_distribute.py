"""`--strategy`: choosing it, the sharded input, and training on two logical CPUs
(mirrored) and in two worker processes on loopback ports (multi_worker), compared with
the one-device run. Every process is a subprocess with a timeout."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from training import distribute
from training import run_dir as rd
from training.options import TrainError, TrainOptions
from training.train import train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# A few seconds an epoch; 38 steps of 16 pairs an epoch.
ARGS = ["--data", "default", "--preset", "tiny", "--max-source-length", "40",
        "--max-target-length", "12", "--batch-size", "16", "--learning-rate", "0.003",
        "--eval-samples", "20", "--limit", "600", "--accept-trivial"]

# `python -m kit` in a process whose CPU is split into two logical devices before
# TensorFlow starts: MirroredStrategy then has two replicas without a GPU.
_TWO_CPUS = ("import sys\n"
             "import tensorflow as tf\n"
             "cpu = tf.config.list_physical_devices('CPU')[0]\n"
             "tf.config.set_logical_device_configuration(\n"
             "    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
             "from kit.__main__ import main\n"
             "sys.exit(main(sys.argv[1:]))\n")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


class Workers:
    """Two processes running `command` with TF_CONFIG for a two-worker cluster on
    loopback; each one's temporary files go under `tmp`."""

    def __init__(self, command, logs, tmp):
        tmp.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2)
        self.logs = logs
        self.processes = []
        for index in range(2):
            env = {**ENV, "TF_CONFIG": tf_config(ports, index), "TMPDIR": str(tmp)}
            with open(f"{logs}.{index}.out", "w") as out, open(f"{logs}.{index}.err", "w") as err:
                self.processes.append(subprocess.Popen(command, cwd=ROOT, stdout=out,
                                                       stderr=err, env=env, text=True))

    def output(self, index):
        return (Path(f"{self.logs}.{index}.out").read_text()
                + Path(f"{self.logs}.{index}.err").read_text())

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        try:
            return [p.wait(timeout=max(1, deadline - time.monotonic())) for p in self.processes]
        finally:
            self.kill()

    def wait_for(self, index, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in Path(f"{self.logs}.{index}.out").read_text():
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"no {text!r}:\n{self.output(0)}\n{self.output(1)}")

    def kill(self):
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def history(out):
    return json.loads((out / rd.RUN_JSON).read_text())["history"]


def assert_close(ours, theirs, rtol, keys=("loss", "val_loss")):
    for mine, reference in zip(ours, theirs):
        for key in keys:
            np.testing.assert_allclose(mine[key], reference[key], rtol=rtol, err_msg=key)


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    """The reference: 3 epochs on one device (the default here), by the CLI."""
    out = tmp_path_factory.mktemp("one_device") / "run"
    result = subprocess.run([sys.executable, "-m", "kit", "train", "--out", str(out), *ARGS,
                             "--epochs", "3"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "strategy one_device (auto: no GPU" in result.stdout
    return out


# -- choosing the strategy (no TensorFlow) -------------------------------------------


def test_tf_config_gives_the_task_and_who_is_the_chief():
    two = {"TF_CONFIG": tf_config([1, 2], 1)}
    task = distribute.cluster_task(two)
    assert (task.kind, task.index, task.workers, task.is_chief) == ("worker", 1, 2, False)
    assert distribute.cluster_task({"TF_CONFIG": tf_config([1, 2], 0)}).is_chief
    with_chief = {"TF_CONFIG": json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                                           "task": {"type": "worker", "index": 0}})}
    assert not distribute.cluster_task(with_chief).is_chief
    assert distribute.cluster_task({}) is None
    with pytest.raises(distribute.DistributeError, match="not in its cluster"):
        distribute.cluster_task({"TF_CONFIG": tf_config([1, 2], 2)})
    with pytest.raises(distribute.DistributeError, match="not a cluster of ours"):
        distribute.cluster_task({"TF_CONFIG": "{not json"})


def test_auto_is_multi_worker_only_for_several_workers():
    task = distribute.cluster_task({"TF_CONFIG": tf_config([1, 2], 0)})
    single = distribute.cluster_task({"TF_CONFIG": tf_config([1], 0)})
    assert distribute.is_multi_worker("auto", task)
    assert not distribute.is_multi_worker("auto", single)
    assert not distribute.is_multi_worker("auto", None)
    assert not distribute.is_multi_worker("mirrored", task)
    assert distribute.is_multi_worker("multi_worker", single)


def test_bad_strategy_and_missing_tf_config_fail_before_any_work(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "run"
    with pytest.raises(TrainError, match="--strategy must be one of"):
        train(TrainOptions(out=str(out), strategy="tpu"))
    with pytest.raises(TrainError, match="multi_worker needs TF_CONFIG"):
        train(TrainOptions(out=str(out), strategy="multi_worker"))
    monkeypatch.setenv("TF_CONFIG", "[]")
    with pytest.raises(TrainError, match="TF_CONFIG is not a cluster"):
        train(TrainOptions(out=str(out), strategy="auto"))
    assert not out.exists()


def test_the_strategy_is_not_part_of_a_runs_identity():
    assert (TrainOptions(strategy="mirrored").identity()
            == TrainOptions(strategy="one_device").identity())


# -- the input: sharded by DATA across two workers --------------------------------------

_SHARD_WORKER = """
import json, os, sys
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
from training import distribute
from training.pipeline import EncodedSplit, make_dataset
# Example i has source [i + 1] * length: lengths vary, so do buckets and partial batches.
sizes = [3 + (i * 7) % 30 for i in range(101)]
split = EncodedSplit([[i + 1] * n for i, n in enumerate(sizes)], [[5] * 4] * 101, 0, 0)
dataset = make_dataset(split, 8, shuffle=True, seed=3)
mine = distribute.distributed_input(
    dataset, distribute.Distribution("multi_worker", "", strategy, 2, 2, ""))
steps = []
for (source, _), _, _ in strategy.experimental_distribute_dataset(mine):
    parts = strategy.experimental_local_results(source)
    steps.append(sorted(int(row[0]) - 1 for part in parts for row in part.numpy()))
whole = [sorted(int(row[0]) - 1 for row in source.numpy()) for (source, _), _, _ in dataset]
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
with open(f"{sys.argv[1]}.{index}", "w") as handle:
    json.dump({"steps": steps, "whole": whole}, handle)
"""


def test_two_workers_see_each_example_once_an_epoch_in_the_global_batches(tmp_path):
    """Each step, the two workers' shares make up the one-device run's global batch
    of that step; over the epoch every example is seen exactly once."""
    workers = Workers([sys.executable, "-c", _SHARD_WORKER, str(tmp_path / "seen")],
                      tmp_path / "log", tmp_path / "tmp")
    assert workers.wait(timeout=150) == [0, 0], workers.output(0) + workers.output(1)
    first, second = (json.loads((tmp_path / f"seen.{i}").read_text()) for i in (0, 1))
    whole = first["whole"]
    assert len(first["steps"]) == len(second["steps"]) == len(whole)
    for step, (mine, theirs) in enumerate(zip(first["steps"], second["steps"])):
        assert not set(mine) & set(theirs), step
        assert sorted(mine + theirs) == whole[step], step
    everything = [i for step in first["steps"] + second["steps"] for i in step]
    assert sorted(everything) == list(range(101))


# -- mirrored: two logical CPUs in one process --------------------------------------


def run_on_two_cpus(out, *args):
    return subprocess.run([sys.executable, "-c", _TWO_CPUS, "train", "--out", str(out),
                           *ARGS, "--strategy", "mirrored", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=ENV)


def test_mirrored_on_two_replicas_matches_one_device(one_device_run, tmp_path):
    out = tmp_path / "run"
    result = run_on_two_cpus(out, "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "strategy mirrored (asked for): 2 replicas on CPU x2 (logical)" in result.stdout
    info = json.loads((out / rd.RUN_JSON).read_text())
    assert info["distribution"] == {**info["distribution"], "strategy": "mirrored",
                                    "replicas": 2, "workers": 1, "global_batch_size": 16,
                                    "per_replica_batch_size": 8}
    assert info["learning_rate"]["schedule"] == "constant"
    # The same 38 global batches, each split in two: the loss of the epoch and the
    # validation loss after it agree with one device's to well within 1%.
    assert_close(info["history"], history(one_device_run)[:1], rtol=5e-3)


def test_mirrored_mixed_precision(one_device_run, tmp_path):
    out = tmp_path / "run"
    result = run_on_two_cpus(out, "--epochs", "1", "--precision", "mixed_float16")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / rd.RUN_JSON).read_text())
    assert info["precision"] == "mixed_float16" and info["distribution"]["replicas"] == 2
    assert_close(info["history"], history(one_device_run)[:1], rtol=2e-2)


# -- multi_worker: two processes on loopback ports ----------------------------------


def test_multi_worker_killed_worker_resume_and_result(one_device_run, tmp_path):
    """Two workers in mixed precision; worker 1 is killed in epoch 2; the chief stops
    with one line; the same two commands resume after epoch 1 and finish; only the
    chief wrote --out, and the result matches the one-device float32 run's."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "kit", "train", "--out", str(out), *ARGS,
               "--epochs", "3", "--precision", "mixed_float16"]
    workers = Workers(command, tmp_path / "first", tmp_path / "tmp1")
    workers.wait_for(0, "epoch 1/3:", timeout=200)
    workers.processes[1].send_signal(signal.SIGKILL)
    codes = workers.wait(timeout=120)
    assert codes == [1, -signal.SIGKILL], workers.output(0)
    chief = workers.output(0)
    assert "Traceback" not in chief, chief
    errors = [line for line in chief.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a worker of the cluster stopped" in errors[0], chief
    state = json.loads((out / rd.CHECKPOINT_DIR / "state.json").read_text())
    assert state["epochs_done"] == 1

    workers = Workers(command, tmp_path / "again", tmp_path / "tmp2")
    assert workers.wait(timeout=300) == [0, 0], workers.output(0) + workers.output(1)
    assert f"resuming {out} after epoch 1" in workers.output(0)
    assert "resuming" in workers.output(1) and "the chief writes" in workers.output(1)
    assert "metrics:" in workers.output(0) and "metrics:" not in workers.output(1)
    # The other worker's temporary run directory is gone.
    assert not list((tmp_path / "tmp2").iterdir())
    info = json.loads((out / rd.RUN_JSON).read_text())
    assert info["complete"] and info["epochs_done"] == 3
    assert info["distribution"]["strategy"] == "multi_worker"
    assert info["distribution"]["chosen"] == "auto: TF_CONFIG names 2 workers"
    assert info["precision"] == "mixed_float16"
    assert info["distribution"]["workers"] == 2 and info["distribution"]["replicas"] == 2
    assert info["history"][:1] == state["history"]
    assert_close(info["history"], history(one_device_run), rtol=3e-2)
    assert rd.read_run(out).metrics["val_decoded"] == 20



@pytest.mark.parametrize("cluster", [{"worker": "127.0.0.1:1,127.0.0.1:2"},
                                     {"worker": [1, 2]}, {"worker": ["nohost"]}])
def test_a_malformed_cluster_is_one_line(cluster):
    """A string for the worker list, or integers for addresses, gave a TypeError."""
    text = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    with pytest.raises(distribute.DistributeError, match="host:port"):
        distribute.cluster_task({"TF_CONFIG": text})


def _lonely_worker(tmp_path, *extra):
    """Worker 0 of a two-worker cluster whose worker 1 never starts."""
    env = {**ENV, "TF_CONFIG": tf_config(free_ports(2), 0), "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-m", "kit", "train", *ARGS, "--epochs", "1", "--out",
         str(tmp_path / "run"), "--strategy", "multi_worker", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(process, text, timeout=120):
    """Reads the process's stdout until a line holds `text` (the waiting line)."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if text in line:
            return line
        assert time.monotonic() < deadline, "no waiting line"
    raise AssertionError(f"the process ended without printing {text!r}")


def test_a_worker_whose_peer_never_starts_gives_up_after_the_timeout(tmp_path):
    """It waited in silence for TensorFlow's hour, deaf to Ctrl-C and SIGTERM."""
    process = _lonely_worker(tmp_path, "--worker-timeout", "5")
    try:
        line = _wait_for_line(process, "waiting up to 5 s for the 2 workers")
        assert line.startswith("strategy multi_worker")
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL  # ended by its watchdog
    assert [e for e in err.splitlines() if e.startswith("error: ")] == [
        "error: all 2 workers of TF_CONFIG connecting did not happen within 5 s "
        "(--worker-timeout); check that every worker of TF_CONFIG is started and that their "
        "addresses are right"]


def test_ctrl_c_ends_a_waiting_worker_at_once(tmp_path):
    """It was deaf to Ctrl-C: the strategy's creation holds the GIL in C++. (SIGTERM is
    taken by TensorFlow's preemption handler meanwhile: the timeout ends that wait.)"""
    process = _lonely_worker(tmp_path)
    try:
        _wait_for_line(process, "waiting up to 600 s")
        time.sleep(6.0)  # inside the strategy's creation (TensorFlow is imported first)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert time.monotonic() - started < 10
    assert process.returncode == -signal.SIGINT, err  # the shell's 130
    assert "interrupted while waiting" in err and "Traceback" not in err
