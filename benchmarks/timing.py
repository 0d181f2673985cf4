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
    cores); SIGCONT those it stopped afterwards, whatever happens, also when stopping a later
    one fails. A pid that is no positive integer (ignored before: a typo timed under load) or
    of this process's own group (it stopped itself for good) is a UsageError before anything
    is stopped, one this user may not signal a UsageError after resuming the others; one that
    has exited is skipped."""
    groups = _groups(pids)
    stopped = []
    try:
        for pid, group in groups:
            try:
                os.killpg(group, signal.SIGSTOP)
            except PermissionError:
                raise _bad_pause(pid, "processes this user may stop") from None
            except ProcessLookupError:  # exited meanwhile
                continue
            stopped.append(group)
        yield
    finally:
        for group in stopped:
            try:
                os.killpg(group, signal.SIGCONT)
            except ProcessLookupError:
                pass


def _groups(pids):
    """[(pid, its process group)] of the live processes among `pids`, each group once."""
    own, groups = os.getpgid(0), {}
    for pid in pids:
        try:
            number = int(pid)
        except ValueError:
            number = 0
        if number <= 0:  # 0 and -1 are "this group" and "every process" to killpg
            raise _bad_pause(pid, "process ids (positive integers)")
        try:
            group = os.getpgid(number)
        except ProcessLookupError:  # exited: nothing to pause
            continue
        if group == own or group <= 0:  # group 0 (pid 1's here) is "this group" to killpg too
            raise _bad_pause(pid, "processes outside this one's process group (it would stop "
                                  "itself)")
        groups.setdefault(group, pid)
    return [(pid, group) for group, pid in groups.items()]


def _bad_pause(pid, expected):
    from anomaly_toolbox.errors import UsageError

    return UsageError("pause", pid, expected)
