"""`--strategy`: one device, several local devices, or several hosts, with tf.distribute.

    one_device    no tf.distribute at all: the path the kit always had, unchanged
    mirrored      tf.distribute.MirroredStrategy over the local GPUs (without a GPU: the
                  logical CPUs, when the process configured more than one, which is how
                  the tests run it on a CPU-only machine; else the one CPU)
    multi_worker  tf.distribute.MultiWorkerMirroredStrategy over the cluster in TF_CONFIG
    auto          multi_worker when TF_CONFIG names several workers, else mirrored when
                  several GPUs are visible, else one_device

Under every strategy `--batch-size` is the global batch: each step takes the same global
batch that a one-device run takes (same shuffle, same buckets) and splits it among the
replicas, and across workers tf.data's DATA sharding gives each worker its replicas'
part of it, so no example is seen twice in an epoch. One optimizer update is made per
global batch, so the learning-rate schedule counts the same steps on any strategy: a run
may be resumed on another strategy, and `--strategy` is not part of a run's identity.

Only the chief (task `chief`, else worker 0) writes --out; the other workers write what
every worker must write (the collective checkpoints) to a temporary directory they
remove. To resume, a worker reads the chief's --out: it must see it (one host, or a
shared file system); the workers check that they agree on the run before training.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import zlib
from dataclasses import dataclass

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# How long a worker waits for the others of TF_CONFIG to start (--worker-timeout):
# MultiWorkerMirroredStrategy's creation blocks in C++ until every task has connected,
# deaf to Ctrl-C and SIGTERM, for as long as TensorFlow's own registration timeout.
WORKER_TIMEOUT_S = 600.0


class DistributeError(ValueError):
    """A strategy that cannot run here (one line for the user)."""


@dataclass
class Task:
    """This process's place in the TF_CONFIG cluster."""

    kind: str  # "chief" or "worker"
    index: int
    workers: int  # chief and workers: the processes that train
    has_chief: bool = False  # the cluster names a chief (else worker 0 is the chief)

    @property
    def is_chief(self):
        return self.kind == "chief" or (self.index == 0 and not self.has_chief)

    def describe(self):
        role = "the chief, writes --out" if self.is_chief else "writes a temporary copy"
        return f"{self.kind} {self.index} of {self.workers} ({role})"


def cluster_task(environ=None):
    """The Task that TF_CONFIG describes, None without TF_CONFIG; DistributeError if it
    is malformed. Reads no TensorFlow, so a bad TF_CONFIG fails before any work."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], int(task["index"])
        counts = {name: len(_addresses(cluster, name)) for name in ("chief", "worker")}
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise DistributeError(f"TF_CONFIG is not a cluster of ours ({error}); expected "
                              '{"cluster": {"worker": ["host:port", ...]}, '
                              '"task": {"type": "worker", "index": 0}}') from None
    if kind not in ("chief", "worker") or not 0 <= index < counts.get(kind, 0):
        raise DistributeError(f"TF_CONFIG task {kind!r} {index} is not in its cluster "
                              f"({counts['chief']} chief, {counts['worker']} workers)")
    return Task(kind, index, counts["chief"] + counts["worker"], has_chief=counts["chief"] > 0)


def _addresses(cluster, name):
    """The "host:port" list of one job of the cluster; ValueError for anything else (a
    string in place of the list, integers for addresses)."""
    addresses = cluster.get(name, [])
    if not isinstance(addresses, list) or not all(
            isinstance(address, str) and address.rpartition(":")[2].isdigit()
            for address in addresses):
        raise ValueError(f'cluster "{name}" must be a list of "host:port" strings, got '
                         f"{json.dumps(addresses)[:80]}")
    return addresses


def is_multi_worker(name, task):
    """Whether `--strategy name` means several processes (known without TensorFlow)."""
    return name == "multi_worker" or (name == "auto" and task is not None and task.workers > 1)


def check_strategy(name):
    """The Task of a multi-worker run, None otherwise; DistributeError for a bad
    --strategy or TF_CONFIG. No TensorFlow."""
    if name not in STRATEGIES:
        raise DistributeError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    task = cluster_task() if name in ("auto", "multi_worker") else None
    if name == "multi_worker" and task is None:
        raise DistributeError("--strategy multi_worker needs TF_CONFIG: the cluster's "
                              "workers and this process's task (see the README)")
    return task if is_multi_worker(name, task) else None


@dataclass
class Distribution:
    """The strategy chosen, and what run.json says about it."""

    name: str  # one_device | mirrored | multi_worker
    reason: str  # why: "asked for", "auto: 2 GPUs visible", ...
    strategy: object  # the tf.distribute strategy; None for one_device
    replicas: int
    workers: int
    devices: str  # "CPU", "GPU x2 (...)", "CPU x2 (logical)"
    task: Task = None

    def scope(self):
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self, batch_size):
        where = f" on {self.workers} workers, this is {self.task.describe()}" if self.task else ""
        per_replica = _per_replica(batch_size, self.replicas)
        return (f"strategy {self.name} ({self.reason}): {self.replicas} "
                f"replica{'s' if self.replicas > 1 else ''} on {self.devices}{where}; "
                f"global batch {batch_size}, {per_replica} per replica")

    def to_dict(self, batch_size):
        return {"strategy": self.name, "chosen": self.reason, "replicas": self.replicas,
                "workers": self.workers, "devices": self.devices,
                "global_batch_size": batch_size,
                "per_replica_batch_size": _per_replica(batch_size, self.replicas),
                "sharding": ("none" if self.replicas == 1 else
                             "each global batch split among the replicas (across workers: "
                             "tf.data AutoShardPolicy.DATA); no example twice per epoch")}


def _per_replica(batch_size, replicas):
    low, high = batch_size // replicas, -(-batch_size // replicas)
    return low if low == high else f"{low}-{high}"


# The watchdog of `bounded_wait`, a separate small process: the waiting call holds the
# GIL, so no thread of the waiting process could run meanwhile. It ends the waiting
# process after the timeout, and says in one line why the process ended.
_WATCHDOG = """
import os, signal, sys, time
parent, timeout, what = int(sys.argv[1]), sys.argv[2], sys.argv[3]
deadline = time.monotonic() + float(timeout)
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches this process group too
while os.getppid() == parent:
    if time.monotonic() > deadline:
        print(f"error: {what} did not happen within {timeout} s (--worker-timeout); "
              "check that every worker of TF_CONFIG is started and that their addresses "
              "are right", file=sys.stderr, flush=True)
        os.kill(parent, signal.SIGKILL)
        sys.exit(0)
    time.sleep(0.1)
print(f"\\ninterrupted while waiting: {what}", file=sys.stderr, flush=True)
"""


@contextlib.contextmanager
def bounded_wait(what, timeout_s):
    """Runs the block (TensorFlow's import and a C++ call that may block for good while
    holding the GIL, so that no Python signal handler or thread runs) so that it always
    ends, with one line that says why:

    - Ctrl-C takes its default action meanwhile: the process ends at once (the block
      writes nothing, so that loses nothing), and the watchdog says so;
    - the watchdog process (`_WATCHDOG`) ends it after `timeout_s` seconds.

    SIGTERM gets its default action too, but MultiWorkerMirroredStrategy installs
    TensorFlow's preemption handler, which takes SIGTERM while the strategy waits (2.21,
    measured): then the timeout ends the wait. Afterwards the handlers of before are put
    back for both signals, TensorFlow's preemption handler replaced, so that a run on
    several workers ends on SIGTERM as a one-device run does."""
    handlers = {sig: signal.signal(sig, signal.SIG_DFL)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stderr = sys.stderr.fileno()  # fd 2 may point at /dev/null (kit.quiet)
    except (AttributeError, OSError, ValueError):
        stderr = None
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()),
                                 f"{timeout_s:g}", what], stdin=subprocess.DEVNULL,
                                stderr=stderr)
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def resolve(name, task, worker_timeout_s=WORKER_TIMEOUT_S, log=print):
    """Creates the strategy `--strategy name` means here; call it before any other
    TensorFlow op (MultiWorkerMirroredStrategy must configure the collectives first).
    A multi-worker strategy waits for every worker of the cluster: at most
    `worker_timeout_s` seconds (see `bounded_wait`), after a line that says so through
    `log`."""
    if is_multi_worker(name, task):
        reason = ("asked for" if name == "multi_worker" else
                  f"auto: TF_CONFIG names {task.workers} workers")
        workers = task.workers if task is not None else "several"
        log(f"strategy multi_worker ({reason}): waiting up to {worker_timeout_s:g} s for "
            f"the {workers} workers of TF_CONFIG to connect"
            + (f"; this is {task.describe()}" if task is not None else ""))
        with bounded_wait(f"all {workers} workers of TF_CONFIG connecting",
                          worker_timeout_s):
            import tensorflow as tf

            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        gpus = tf.config.list_physical_devices("GPU")
        gpu_text = f"GPU x{len(gpus)} ({gpus[0].name})" if gpus else "CPU"
        return Distribution("multi_worker", reason, strategy, strategy.num_replicas_in_sync,
                            strategy.extended._num_workers,  # noqa: SLF001  (no public count)
                            gpu_text + " per worker", task)
    from .backend import JAX, gpu_names, keras_backend

    if keras_backend() == JAX:  # tf.distribute's strategies were refused (backend.py)
        gpus = gpu_names()
        return Distribution("one_device", f"{'asked for' if name == 'one_device' else 'auto'}"
                            ": the JAX backend trains on one device", None, 1, 1,
                            f"GPU ({gpus[0]})" if gpus else "CPU")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            name, reason = "mirrored", f"auto: {len(gpus)} GPUs visible"
        else:
            name = "one_device"
            reason = f"auto: {len(gpus) or 'no'} GPU, no TF_CONFIG of several workers"
    else:
        reason = "asked for"
    gpu_text = f"GPU x{len(gpus)} ({gpus[0].name})" if gpus else "CPU"
    if name == "one_device":
        return Distribution(name, reason, None, 1, 1, gpu_text)
    devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if devices:
        text = gpu_text
    else:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        text = f"CPU x{len(devices)} (logical)" if len(devices) > 1 else "CPU"
    strategy = tf.distribute.MirroredStrategy(devices)
    return Distribution(name, reason, strategy, strategy.num_replicas_in_sync, 1, text)


def distributed_input(dataset, distribution):
    """The dataset as `fit` should get it: across workers, sharded by DATA, so that each
    worker keeps its replicas' share of every global batch (the pipeline has no files
    to shard by, and sharding by element before batching would change the batches)."""
    if distribution.name != "multi_worker":
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def adapt_model(model, distribution, element_spec):
    """Works around two Keras 3.15 faults with MultiWorkerMirroredStrategy (the model
    instance is changed, not its class or saved file):

    - `fit` first takes one batch and reduces it across replicas to learn the input
      shapes (`_maybe_symbolic_build`); with several workers that reduce fails on a
      nest of tensors. The shapes are given from the dataset's element_spec instead.
    - `reduce_per_replica` reduces the step's logs across workers with `axis=0`, which
      fails on scalars. The steps return their logs with shape (1,): the reduction
      then averages the identical values of the replicas into a scalar.
    """
    if distribution.name != "multi_worker":
        return model
    import tensorflow as tf

    symbolic_build = model._maybe_symbolic_build  # noqa: SLF001

    def shapes_from_spec(iterator=None, data_batch=None):
        return symbolic_build(data_batch=element_spec)

    def with_vector_logs(step):
        def wrapped(data):
            return {name: tf.reshape(value, [1]) for name, value in step(data).items()}
        return wrapped

    model._maybe_symbolic_build = shapes_from_spec  # noqa: SLF001
    model.train_step = with_vector_logs(model.train_step)
    model.test_step = with_vector_logs(model.test_step)
    return model


def workers_agree(distribution, text):
    """Whether every worker passed the same `text` (a collective: all must call it)."""
    if distribution.workers == 1:
        return True
    import tensorflow as tf

    value = zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF
    strategy = distribution.strategy

    @tf.function  # eagerly, the collective warns of its overhead
    def gathered():
        return strategy.gather(strategy.run(lambda: tf.constant([value], tf.int32)), axis=0)

    return bool(tf.reduce_all(tf.equal(gathered(), value)))


def lost_worker(error):
    """Whether a TensorFlow error means that a peer of the cluster went away."""
    import tensorflow as tf

    return isinstance(error, (tf.errors.UnavailableError, tf.errors.CancelledError,
                              tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                              tf.errors.InternalError))
