"""`score` never overwrites what it reads or what the user keeps: an --output that is one of the
--input folder's images is refused, --maps_dir must be new or empty and gives each input its own
map (a.png and a.jpg)."""

import csv
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


def test_maps_dir_must_be_new_or_empty_and_each_input_has_its_own_map(saved_model, images,
                                                                      tmp_path):
    names = ["a.png", "a_map.png", "b.png", "b.jpg"]
    folder = image_folder(tmp_path / "in", images[0], names)
    before, out = contents(folder), tmp_path / "s.csv"
    code, err = score(saved_model, f"--input={folder}", f"--output={out}", f"--maps_dir={folder}")
    assert refused(code, err, "maps_dir") and "new or empty" in err, err
    assert contents(folder) == before and not out.exists()
    maps = tmp_path / "maps"
    maps.mkdir()  # empty: taken; the CSV may be a new file in the input folder
    code, err = score(saved_model, f"--input={folder}", f"--output={folder / 's.csv'}",
                      f"--maps_dir={maps}")
    assert code == 0, err[-3000:]
    assert sorted(os.listdir(maps)) == sorted(f"{n}_map.png" for n in names)
    assert contents(folder) == {**before, "s.csv": (folder / "s.csv").read_bytes()}
    assert sorted(r["id"] for r in csv.DictReader((folder / "s.csv").open())) == sorted(names)
