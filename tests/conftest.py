"""Shared fixtures: small real slices of the offline datasets, tiny model configs."""

import json
import os
import signal
import subprocess

import numpy as np
import pytest

from anomaly_toolbox import cli

cli.command_defaults()  # TensorFlow in this process runs as under the commands (oneDNN on)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("ANOMALY_TOOLBOX_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
TINY = {"latent_dim": 8, "filters": [4, 8, 16]}


@pytest.fixture
def children():
    """subprocess.Popen for side-by-side child processes, each in its own process group, which
    is killed at teardown if a failed assert left it running (a benchmark's training
    grandchildren too: they would hold a core for the rest of the suite)."""
    procs = []

    def start(*args, **kwargs):
        procs.append(subprocess.Popen(*args, start_new_session=True, **kwargs))
        return procs[-1]
    yield start
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


@pytest.fixture(scope="session")
def data_dir():
    if not os.path.isdir(os.path.join(DATA_DIR, "mnist")):
        pytest.fail(f"offline data not found at {DATA_DIR}; set ANOMALY_TOOLBOX_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist(data_dir):
    from anomaly_toolbox.data import datasets

    return datasets.load("mnist", data_dir)


@pytest.fixture(scope="session")
def images(mnist):
    """64 real MNIST test images (uint8, 28x28) with their digit labels."""
    return mnist.x_test[:64], mnist.y_test[:64]


@pytest.fixture(scope="session")
def batch(images):
    """The same images preprocessed to model input (64, 32, 32, 1) in [-1, 1]."""
    from anomaly_toolbox.data.preprocessing import to_model_input

    return to_model_input(images[0])


TINY_RUN = {"epochs": 2, "batch_size": 32, "precision": "float32", "model": TINY}  # numbers
# compared with float32 code: not `auto`, which is bfloat16 for some models on some CPUs


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`tiny_run(model)` -> (run folder, results) of a fixed-seed 2-epoch run on MNIST class 3,
    300 images per split: trained once per session on first use, shared READ-ONLY (copy a run
    folder before changing it)."""
    from anomaly_toolbox.run import training

    runs = {}

    def get(model_name):
        if model_name not in runs:
            tmp = tmp_path_factory.mktemp(f"tiny_{model_name}")
            (tmp / "tiny.json").write_text(json.dumps(TINY_RUN))
            results = training.fit(model_name, "mnist", 3, str(tmp / "run"),
                                   config=str(tmp / "tiny.json"), data_dir=DATA_DIR, limit=300,
                                   verbose=0)
            runs[model_name] = (tmp / "run", results)
        return runs[model_name]

    return get


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    """A tiny untrained autoencoder (it has anomaly_map) exported as runs export it (metadata
    pixel_range 0..255): shared READ-ONLY."""
    from anomaly_toolbox.run import export

    path = tmp_path_factory.mktemp("export") / "saved_model"
    export.save(tiny_model("autoencoder"), str(path), channels=1, threshold=0.5,
                metadata={"model": "autoencoder", "channels": 1})
    return path


def tiny_model(name, **overrides):
    from anomaly_toolbox import models as registry

    cls = registry.get(name)
    model = cls(**{**cls.DEFAULTS, **{k: v for k, v in TINY.items() if k in cls.DEFAULTS},
                   **overrides}, channels=1)
    model.compile()
    return model


def assert_close(a, b, atol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=1e-5)


_FRESH_SCORER = """
import sys, numpy as np, tensorflow as tf
assert 'anomaly_toolbox' not in sys.modules
loaded = tf.saved_model.load(sys.argv[1])
np.save(sys.argv[3], loaded.score(np.load(sys.argv[2])).numpy())
assert 'anomaly_toolbox' not in sys.modules
"""


def score_in_fresh_process(saved_model_dir, images, tmp_path):
    """Scores `images` with a plain tf.saved_model.load in a new Python that never imports us."""
    import subprocess
    import sys

    src, out = str(tmp_path / "in.npy"), str(tmp_path / "out.npy")
    np.save(src, images)
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", _FRESH_SCORER, str(saved_model_dir), src, out],
                   check=True, env=env, cwd=str(tmp_path))
    return np.load(out)


def one_line_exit_2(capsys, fn):
    """Runs fn under the entry points' error contract; returns the one `error:` line."""
    from anomaly_toolbox import cli

    with pytest.raises(SystemExit) as e:
        cli.guarded(fn)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err
