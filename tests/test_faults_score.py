"""`score` never overwrites what it reads or what the user keeps: an --output that is one of the
--input folder's images is refused, --maps_dir must be new or empty and gives each input its own
map (a.png and a.jpg); file names that are not UTF-8 are scored, written to the CSV as their own
bytes and hashed when a folder dataset is trained on, with ordinary names hashed as before."""

import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, TINY
from PIL import Image

from anomaly_toolbox import files
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.run import training

RAW = b"bad\xff\xfename.png"  # a file name that is not UTF-8
NOT_UTF8 = os.fsdecode(RAW)  # as os.listdir gives it


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


def test_an_output_that_is_the_maps_dir_or_one_of_its_maps_is_refused(saved_model, images,
                                                                     tmp_path):
    """The CSV is written after the maps: --output=--maps_dir was refused only then, leaving the
    maps; --output=<maps_dir>/a.png_map.png replaced a.png's map with the CSV, exit 0."""
    image = image_folder(tmp_path / "in", images[0], ["a.png"]) / "a.png"
    maps = tmp_path / "maps"
    for output in (maps, maps / "a.png_map.png"):
        code, err = score(saved_model, f"--input={image}", f"--output={output}",
                          f"--maps_dir={maps}")
        assert refused(code, err, "output") and "other than --maps_dir" in err, err
        assert not maps.exists()
    code, err = score(saved_model, f"--input={image}", f"--output={maps / 'scores.csv'}",
                      f"--maps_dir={maps}")  # a CSV of another name inside it is fine
    assert code == 0 and sorted(os.listdir(maps)) == ["a.png_map.png", "scores.csv"], err


def test_a_file_name_that_is_not_utf8_is_scored_and_its_id_is_its_bytes(saved_model, images,
                                                                       tmp_path):
    folder = image_folder(tmp_path / "in", images[0], ["ok.png", NOT_UTF8])
    out, maps = tmp_path / "s.csv", tmp_path / "maps"
    code, err = score(saved_model, f"--input={folder}", f"--output={out}", f"--maps_dir={maps}")
    assert code == 0, err[-3000:]
    ids = [row.split(b",")[0] for row in out.read_bytes().splitlines()[1:]]
    assert ids == [RAW, b"ok.png"]  # the file's own bytes: the id finds it again
    assert sorted(os.listdir(os.fsencode(maps))) == [RAW + b"_map.png", b"ok.png_map.png"]


def test_ordinary_names_hash_as_before_and_other_names_as_their_bytes(tmp_path):
    (tmp_path / "1").write_bytes(b"zero")
    (tmp_path / "2").write_bytes(b"one")
    paths = [str(tmp_path / "1"), str(tmp_path / "2")]
    # the data identity runs recorded before non-UTF-8 names were hashed
    assert files.sha256(paths, ["train/0.png", "test/normal/été.png"]) == \
        "d6003b1e616add4d89630e2ba277c2a09fc99518b8b216990cce11b1cd9eb094"
    assert files.sha256(paths[:1], [NOT_UTF8]) == hashlib.sha256(RAW + b"\0zero").hexdigest()


def test_training_on_a_folder_with_names_that_are_not_utf8(images, tmp_path):
    root = tmp_path / "data"  # with test folders, every train/ file is streamed by tf.data
    image_folder(root / "train", images[0][:8], [f"{i}.png" for i in range(7)] + [NOT_UTF8])
    image_folder(root / "test" / "normal", images[0][8:12], ["0.png", "1.png", "2.png", NOT_UTF8])
    image_folder(root / "test" / "anomalous", images[0][12:16], [f"{i}.png" for i in range(4)])
    (tmp_path / "tiny.json").write_text(json.dumps({"epochs": 1, "batch_size": 4, "model": TINY}))
    training.fit("autoencoder", f"folder:{root}", 0, str(tmp_path / "run"),
                 config=str(tmp_path / "tiny.json"), verbose=0)
    source = json.loads((tmp_path / "run" / "results.json").read_text())["data_source"]
    assert source["files"] == 16 and len(source["sha256"]) == 64


def test_a_run_folder_is_not_a_folder_of_images(saved_model, images, tmp_path):
    """A run's figures (PNGs of one size) were scored as if they were the user's images."""
    import anomaly_toolbox as atb

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    Image.fromarray(images[0][0]).save(run / "test_curves.png")
    for folder, holds in ((run, "results.json"), (saved_model, "saved_model.pb")):
        code, err = score(saved_model, f"--input={folder}", f"--output={tmp_path / 'o.csv'}")
        assert refused(code, err, "input") and f"(it holds {holds})" in err, err
        with pytest.raises(UsageError, match="not a run or SavedModel folder"):
            atb.load(str(saved_model)).score_folder(folder)
    assert not (tmp_path / "o.csv").exists()


def test_an_output_that_is_a_file_of_the_saved_model_or_the_run_is_refused(saved_model, images,
                                                                          tmp_path):
    """--output=<saved_model>/saved_model.pb (tab completion in the --saved_model folder) wrote
    the CSV over the model it scored; --output=<run>/results.json over the run's results."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(saved_model, run / "saved_model")  # the fixture is shared: a copy
    (run / "results.json").write_text("{}")
    (run / "run.json").write_text("{}")
    (run / "old.csv").write_text("")
    (run / "checkpoints" / "best").mkdir(parents=True)
    (run / "checkpoints" / "best" / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    image = image_folder(tmp_path / "in", images[0], ["a.png"]) / "a.png"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for output, why in ((run / "saved_model" / "saved_model.pb", "outside any SavedModel"),
                        (run / "saved_model" / "variables" / "new.csv", "outside any SavedModel"),
                        (run / "results.json", "belongs to the run"),
                        # over the index re-export restores from: the run lost its weights
                        (run / "checkpoints" / "best" / "checkpoint", "outside any run's checkp"),
                        (run / "checkpoints" / "x.csv", "outside any run's checkpoints")):
        code, err = score(run / "saved_model", f"--input={image}", f"--output={output}")
        assert refused(code, err, "output") and why in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    for output in (run / "old.csv", run / "new.csv"):  # a run folder may keep score's CSVs
        code, err = score(run / "saved_model", f"--input={image}", f"--output={output}")
        assert code == 0 and output.read_text().startswith("id,score"), err


def test_one_colour_image_for_a_grayscale_model_is_named_as_such(saved_model, images):
    """(28, 28, 3) read as 28 images of 28 x 3 pixels: 'square images, got (28, 3)'."""
    import anomaly_toolbox as atb

    rgb = np.repeat(images[0][0][..., None], 3, axis=-1)
    with pytest.raises(UsageError, match=r"\(expected images with 1 channel\(s\); got one 28x28 "
                                         r"image with 3\)$"):
        atb.load(str(saved_model)).score(rgb)


def test_an_interrupt_while_drawing_maps_leaves_an_empty_maps_dir_empty(saved_model, images,
                                                                        tmp_path):
    """Removing a half-drawn folder covered only one the call had made: an existing empty one
    kept half the maps, and the same command was then refused ('this one holds files')."""
    import tensorflow as tf

    from anomaly_toolbox import score

    loaded, batch = tf.saved_model.load(str(saved_model)), images[0][:4, ..., None]
    passes = []

    def read():  # the second pass (drawing the overlays) is interrupted after one batch
        passes.append(1)
        yield batch
        if len(passes) == 2:
            raise KeyboardInterrupt
        yield batch

    for maps in (tmp_path / "new", tmp_path / "empty"):
        if maps.name == "empty":
            maps.mkdir()
        passes.clear()
        with pytest.raises(KeyboardInterrupt):
            score.scores_and_maps(loaded, list(range(8)), read, str(maps))
        assert (os.listdir(maps) == []) if maps.name == "empty" else not maps.exists()
