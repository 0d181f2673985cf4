"""What the bench's tests share: the checkout, the offline data and a tiny model's widths."""

import os
import signal
import subprocess

import pytest

from benchmarks import REPO  # noqa: F401 (tests import it from here)

DATA_DIR = os.environ.get("ANOMALY_TOOLBOX_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
TINY = {"latent_dim": 8, "filters": [4, 8, 16]}


@pytest.fixture(scope="session")
def mnist():
    from anomaly_toolbox.data import datasets

    return datasets.load("mnist", DATA_DIR)


@pytest.fixture
def children():
    """Popen for grid runners side by side, each in its own process group: at teardown the
    group is killed, so no cell it trains outlives a failed assert."""
    procs = []

    def start(*args, **kwargs):
        procs.append(subprocess.Popen(*args, start_new_session=True, **kwargs))
        return procs[-1]
    yield start
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group ended with its runner
            pass
        p.wait()
