"""`score` never overwrites what it reads: an --output that is one of the --input folder's images
is refused."""

import os
import subprocess
import sys

import pytest
from conftest import REPO, tiny_model
from PIL import Image

from anomaly_toolbox.run import export


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny untrained autoencoder (it has anomaly_map), exported as runs export it."""
    path = tmp_path_factory.mktemp("export") / "saved_model"
    export.save(tiny_model("autoencoder"), str(path), channels=1, threshold=0.5,
                metadata={"model": "autoencoder", "channels": 1})
    return path


def score(saved_model, *args):
    """(exit code, stderr) of `python -m anomaly_toolbox.score --saved_model=... args`."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.score",
                           f"--saved_model={saved_model}", *args],
                          capture_output=True, text=True, env=env)
    return proc.returncode, proc.stderr


def image_folder(folder, images, names):
    """`folder` holding one MNIST digit per name, PNG or JPEG by its suffix."""
    folder.mkdir(parents=True)
    for image, name in zip(images, names):
        Image.fromarray(image).save(folder / name, "JPEG" if name.endswith(".jpg") else "PNG")
    return folder


def contents(folder):
    return {name: (folder / name).read_bytes() for name in os.listdir(folder)}


def refused(code, err, argument):
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith(f"error: invalid {argument}: ")


def test_an_output_that_is_one_of_the_input_images_is_refused(saved_model, images, tmp_path):
    folder = image_folder(tmp_path / "in", images[0], ["a.png", "b.png"])
    alias = tmp_path / "alias"  # the same folder by another path: real paths are compared
    alias.symlink_to(folder)
    before = contents(folder)
    for output in (folder / "b.png", alias / "a.png"):
        code, err = score(saved_model, f"--input={folder}", f"--output={output}")
        assert refused(code, err, "output") and "a file other than the input" in err, err
    assert contents(folder) == before
