"""What the bench's tests share: the checkout, the offline data and a tiny model's widths."""

import os

import pytest

from benchmarks import REPO  # noqa: F401 (tests import it from here)

DATA_DIR = os.environ.get("ANOMALY_TOOLBOX_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
TINY = {"latent_dim": 8, "filters": [4, 8, 16]}


@pytest.fixture(scope="session")
def mnist():
    from anomaly_toolbox.data import datasets

    return datasets.load("mnist", DATA_DIR)
