"""`python -m kit train` given hostile input: bad numbers, odd data and directories,
Ctrl-C and SIGKILL at awkward moments, a user's umask. Each case runs the command in a
subprocess, as a user would."""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import default_sigint
from training import run_dir as rd
from training.options import TrainOptions
from training.train import train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# A run of a few seconds an epoch at most; --limit and --epochs are added per test.
TINY = ["--data", "default", "--preset", "tiny", "--max-source-length", "40",
        "--max-target-length", "12", "--batch-size", "32", "--learning-rate", "0.003",
        "--eval-samples", "20", "--accept-trivial"]

# `python -m kit` that also says whether TensorFlow was imported: bad options must be
# refused before any TensorFlow work.
_KIT_REPORTING_TF = ("import sys\n"
                     "from kit.__main__ import main\n"
                     "code = main(sys.argv[1:])\n"
                     "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
                     "sys.exit(code)\n")


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "kit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def one_error_line(result):
    """The one `error:` line of a failed command, which printed no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


class Training:
    """`python -m kit train ARGS` running in the background; its stdout is read in a
    thread so that waiting for a line has a deadline."""

    def __init__(self, args, stderr_path):
        self._stderr_path = stderr_path
        with open(stderr_path, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, "-m", "kit", "train", *args],
                                            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True, env=ENV, preexec_fn=default_sigint)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, start, timeout=240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(start) for line in self.lines):
                return
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"no line starting {start!r}:\n{''.join(self.lines)}"
                             f"{self._stderr_path.read_text()}")

    def stop(self, signal_number, timeout=120):
        """Sends the signal; returns (exit code, stderr)."""
        self.process.send_signal(signal_number)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self._stderr_path.read_text()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 3-epoch tiny run, trained by the CLI under umask 022, and its args."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    args = ["--out", str(out), *TINY, "--limit", "160", "--epochs", "3"]
    previous = os.umask(0o022)
    try:
        result = run_cli("train", *args)
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    return out


def test_run_files_get_the_umask_permissions(finished_run):
    """Under umask 022 every file is 0644 and every directory 0755, not the owner-only
    0600 of tempfile.mkstemp: another user exports the run."""
    paths = [finished_run, *finished_run.rglob("*")]
    names = {path.relative_to(finished_run).as_posix() for path in paths}
    assert {rd.RUN_JSON, rd.KERAS_MODEL_FILE, "source_tokenizer.json", rd.TRAIN_SAMPLE,
            rd.TEST_SAMPLE, "checkpoints/state.json", "checkpoints/last.keras"} <= names
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {mode:o}"


def test_an_interrupted_extension_leaves_the_finished_run_whole(finished_run, tmp_path):
    """Finished with 3 epochs; `--epochs 4` interrupted after "resuming"; then the
    original `--epochs 3` command: the run is still finished and exportable."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    finished = json.loads((out / rd.RUN_JSON).read_text())
    args = ["--out", str(out), *TINY, "--limit", "160"]

    training = Training([*args, "--epochs", "4"], tmp_path / "stderr.txt")
    training.wait_for_line(f"resuming {out} after epoch 3")
    code, stderr = training.stop(signal.SIGINT)
    assert code == 130, stderr
    assert "run the same command again to resume" in stderr
    # Epoch 4 did not complete: run.json is the finished run's, and export takes it.
    assert json.loads((out / rd.RUN_JSON).read_text()) == finished
    assert rd.read_run(out).epochs_done == 3

    result = run_cli("train", *args, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert "Traceback" not in result.stderr
    assert json.loads((out / rd.RUN_JSON).read_text()) == finished
    assert rd.read_run(out).complete


@pytest.mark.slow
def test_sigkill_mid_epoch_then_the_same_command_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), *TINY, "--limit", "600", "--batch-size", "16", "--epochs", "4"]
    training = Training(args, tmp_path / "stderr.txt")
    # Our line for epoch 1 comes once it is saved; epoch 2 starts at once after it.
    training.wait_for_line("epoch 1/4:")
    time.sleep(0.5)
    code, stderr = training.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL, stderr
    state = json.loads((out / rd.CHECKPOINT_DIR / "state.json").read_text())
    done = state["epochs_done"]
    assert 1 <= done < 4
    killed = json.loads((out / rd.RUN_JSON).read_text())
    assert killed["complete"] is False and killed["epochs_done"] == done

    result = run_cli("train", *args)
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} after epoch {done}" in result.stdout
    info = json.loads((out / rd.RUN_JSON).read_text())
    assert info["complete"] is True and info["epochs_done"] == 4
    assert info["history"][:done] == state["history"]
    assert [entry["epoch"] for entry in info["history"]] == [1, 2, 3, 4]
    assert rd.read_run(out).metrics["val_decoded"] == 20
    # No temporary file of an atomic write was left behind.
    assert not [path for path in out.rglob(".*")]


def snapshot(directory):
    """{relative path: content digest} of every file under `directory`, less the
    temporary files of atomic writes in progress (".NAME.XXXX.tmp", renamed or gone a
    moment later: a running training's, not the user's)."""
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*"))
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp"))}


@contextlib.contextmanager
def another_training_holds(out):
    """What a running `python -m kit train --out OUT` holds: an exclusive flock on
    OUT/train.lock that records its PID (here, this test's process)."""
    fd = os.open(out / "train.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # the lock goes with it; the file stays, as a killed training's does


@pytest.mark.slow
def test_a_second_training_does_not_take_a_fresh_start_in_progress(tmp_path):
    """The first training is in its first epoch: its files look like a start that
    completed no epoch. A second one on the same --out is refused at once and deletes
    nothing; once the first is gone (killed: the OS drops its lock), the same command
    runs."""
    out = tmp_path / "run"
    args = ["--out", str(out), *TINY, "--limit", "1200", "--batch-size", "16"]
    first = Training([*args, "--epochs", "40"], tmp_path / "stderr.txt")
    try:
        deadline = time.monotonic() + 240
        # The held-out sample is the last file a fresh start writes (state.json the
        # first): once it is there, the start's files are all in place.
        while not (out / rd.TEST_SAMPLE).is_file():
            assert time.monotonic() < deadline and first.process.poll() is None
            time.sleep(0.05)
        before = snapshot(out)

        second = run_cli("train", *args, "--epochs", "1")
        line = one_error_line(second)
        assert line == (f"error: another training holds {out} (PID {first.process.pid}): "
                        "wait for it to end, or choose another --out"), line
        after = snapshot(out)  # the first's files all there (its logs may have grown)
        assert set(before) <= set(after)
        kept = [rd.TRAIN_SAMPLE, rd.TEST_SAMPLE, "source_tokenizer.json"]
        assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    finally:
        first.stop(signal.SIGKILL)

    result = run_cli("train", *args, "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert rd.read_run(out).complete
    assert not (out / rd.LOCK_FILE).exists()


def test_a_held_run_is_not_extended_and_resumes_once_released(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    args = ["train", "--out", str(out), *TINY, "--limit", "160", "--epochs", "4"]
    with another_training_holds(out):
        before = snapshot(out)
        assert "another training holds" in one_error_line(run_cli(*args))
        assert snapshot(out) == before

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} after epoch 3" in result.stdout
    assert rd.read_run(out).epochs_done == 4
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name
                                                           for p in finished_run.iterdir())


@pytest.mark.parametrize("flag, value", [
    ("--max-target-length", "1"),
    ("--max-target-length", "0"),
    ("--max-target-length", "-5"),
    ("--max-target-length", "100000"),
    ("--max-source-length", "0"),
    ("--batch-size", "0"),
    ("--epochs", "-1"),
    ("--limit", "0"),
    ("--eval-samples", "-1"),
    ("--warmup-steps", "0"),
    ("--seed", "-1"),
    ("--learning-rate", "0"),
    ("--learning-rate", "nan"),
    ("--learning-rate", "inf"),
    ("--label-smoothing", "1"),
    ("--label-smoothing", "-0.1"),
])
def test_a_bad_number_is_one_line_before_any_work(tmp_path, flag, value):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY, "--limit", "50", "--epochs", "1", flag, value]
    result = subprocess.run([sys.executable, "-c", _KIT_REPORTING_TF, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=ENV)
    line = one_error_line(result)
    assert line.startswith(f"error: {flag} must be"), line
    assert value in line or value.lstrip("-") in line, line
    assert "tensorflow imported: False" in result.stdout
    assert not out.exists()


@pytest.mark.slow
def test_a_start_that_failed_in_its_first_epoch_does_not_block_the_corrected_one(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY, "--limit", "160", "--epochs", "1"]
    failed = run_cli(*args, "--learning-rate", "1e12", "--label-smoothing", "0")
    assert "NaN" in one_error_line(failed)
    assert (out / rd.CHECKPOINT_DIR / "state.json").is_file()  # what the start left

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "completed no epoch; starting afresh" in result.stdout
    info = rd.read_run(out)
    assert info.epochs_done == 1 and info.raw["options"]["learning_rate"] == 0.003


def test_a_start_that_failed_before_its_samples_does_not_block_the_next(tmp_path, monkeypatch):
    """A full disk while the first files are written: once space is freed, the same
    command starts afresh instead of taking the directory for someone else's."""
    options = TrainOptions(data="default", out=str(tmp_path / "run"), preset="tiny",
                           epochs=1, batch_size=32, max_source_length=40,
                           max_target_length=12, limit=160, eval_samples=20,
                           learning_rate=3e-3, accept_trivial=True)

    def full_disk(path, pairs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(rd, "write_pairs", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(options)
    monkeypatch.undo()
    info = train(options)
    assert info["complete"] and info["epochs_done"] == 1


def test_tsv_whose_sources_all_hash_outside_train(tmp_path):
    data = tmp_path / "h.tsv"
    data.write_text("hello\tbonjour\nhello\tsalut\nhello\tallo\n", encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli("train", "--data", f"tsv:{data}", "--out", str(out), "--preset", "tiny",
                     "--epochs", "1")
    line = one_error_line(result)
    assert "0 training" in line and "at least 3 distinct sources" in line, line
    assert not out.exists()


def test_out_below_a_file(tmp_path):
    file = tmp_path / "FILE"
    file.write_text("mine")
    result = run_cli("train", "--out", str(file / "sub"), *TINY, "--limit", "50",
                     "--epochs", "1")
    assert "FILE is a file, not a directory" in one_error_line(result)
    assert file.read_text() == "mine"


def test_out_where_nothing_can_be_created():
    result = run_cli("train", "--out", "/proc/kit-hostile-test", *TINY, "--limit", "50",
                     "--epochs", "1")
    assert "/proc/kit-hostile-test" in one_error_line(result)


def test_ctrl_c_while_keras_loads_a_model_is_held_until_it_is_loaded():
    """Keras's Model.build_from_config swallows any exception, KeyboardInterrupt too
    (a bare `except`): a Ctrl-C while resuming left a model without its optimizer
    state, and fit failed with a traceback. The load is shielded, then interrupted."""
    # As in a terminal, whatever started pytest (a background job starts with SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        finished = []
        with pytest.raises(KeyboardInterrupt):
            with rd.interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs between bytecodes; give it the chance
                finished.append(True)
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
