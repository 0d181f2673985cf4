"""Timing on a shared, loaded machine: windows synced on their last result, medians of windows.

TensorFlow runs ops asynchronously, so a window stops its clock only once its last result is
computed; the speed reports print the load average beside every number they time."""

import contextlib
import os
import signal
import subprocess
import time


def load_average():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def sync(result):
    """Blocks until `result` (a tensor or a dict/list of them) is computed."""
    import tensorflow as tf

    for t in tf.nest.flatten(result):
        if hasattr(t, "numpy"):
            t.numpy()
            return


def timed_windows(fn, windows, steps):
    """Seconds of each of `windows` windows of `steps` calls of fn(i) (each synced at the end)."""
    seconds = []
    i = 0
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(i)
            i += 1
        sync(out)
        seconds.append(time.perf_counter() - t0)
    return seconds


class BatchClock:
    """keras callback: the time at which each batch of fit ends."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

            def gaps(self):
                return [b - a for a, b in zip(self.ends[1:], self.ends[2:])]

        return Clock()


def vector_set():
    """The CPU's vector extensions that decide bfloat16's speed (AMX most of all)."""
    try:
        with open("/proc/cpuinfo") as f:
            have = set(f.read().split())
    except OSError:
        return "unknown"
    found = [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in have]
    return ", ".join(found) or "none"


@contextlib.contextmanager
def paused(pids):
    """SIGSTOP the process groups of `pids` while timing (nice does not protect a timing on 2
    cores); SIGCONT them afterwards, whatever happens."""
    _signal_groups(pids, signal.SIGSTOP)
    try:
        yield
    finally:
        _signal_groups(pids, signal.SIGCONT)


def _signal_groups(pids, sig):
    for pid in pids:
        try:
            os.killpg(os.getpgid(int(pid)), sig)
        except (ProcessLookupError, ValueError):
            pass
