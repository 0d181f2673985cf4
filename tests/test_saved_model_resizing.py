"""The SavedModel resizes as training did and maps anomalies at the input's resolution, for a
plain-TF client that never imports this package."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from anomaly_toolbox.run import training

TINY_64 = {"epochs": 1, "batch_size": 8, "image_size": 64,
           "model": {"latent_dim": 8, "filters": [4, 8, 16]}}

_CLIENT = """
import json, sys, numpy as np, tensorflow as tf
assert 'anomaly_toolbox' not in sys.modules
m = tf.saved_model.load(sys.argv[1])
x40, x64 = np.load(sys.argv[2]), np.load(sys.argv[3])
maps40, maps64 = m.anomaly_map(x40), m.anomaly_map(x64)
out = {"s40": m.score(x40).numpy().tolist(), "s64": m.score(x64).numpy().tolist(),
       "map40": list(maps40.shape), "map64": list(maps64.shape), "dtype": maps40.dtype.name,
       "map_min": float(tf.reduce_min(maps40)), "one": m.score(x40[0]).numpy().tolist(),
       "metadata": json.loads(m.metadata.numpy().decode())}
try:
    m.score(np.zeros((1, 40, 30, 3), np.uint8))
except tf.errors.InvalidArgumentError as e:
    out["square"] = e.message
assert 'anomaly_toolbox' not in sys.modules
print(json.dumps(out))
"""


def _tinted(images, size=40):
    """MNIST digits as size x size RGB, tinted orange: a stand-in for someone's RGB photos."""
    out = []
    for image in images:
        gray = np.asarray(Image.fromarray(image).resize((size, size)), np.float32)
        out.append(np.stack([gray, gray * 0.6, gray * 0.2], -1).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def rgb_run(mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb64")
    normal, threes = mnist.x_test[mnist.y_test != 3], mnist.x_test[mnist.y_test == 3]
    for folder, images in (("train", normal[:24]), ("test/normal", normal[24:32]),
                           ("test/anomalous", threes[:8])):
        os.makedirs(root / "data" / folder)
        for i, image in enumerate(_tinted(images)):
            Image.fromarray(image).save(root / "data" / folder / f"{i:02d}.png")
    (root / "tiny.json").write_text(json.dumps(TINY_64))
    training.fit("ganomaly", f"folder:{root / 'data'}", 0, str(root / "run"),
                 config=str(root / "tiny.json"), verbose=0)
    return root


def test_plain_tf_scores_and_maps_a_64x64_rgb_model_at_any_square_size(rgb_run, tmp_path):
    from anomaly_toolbox.data.folders import fit_to

    names = sorted(os.listdir(rgb_run / "data" / "test" / "anomalous"))
    x40 = np.stack([np.asarray(Image.open(rgb_run / "data" / "test" / "anomalous" / n))
                    for n in names])
    x64 = np.stack([fit_to(x, 64) for x in x40])
    np.save(tmp_path / "x40.npy", x40), np.save(tmp_path / "x64.npy", x64)
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", _CLIENT, str(rgb_run / "run" / "saved_model"),
                           str(tmp_path / "x40.npy"), str(tmp_path / "x64.npy")],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    # in-graph resizing of the 40x40 files gives exactly the 64x64 images training saw
    np.testing.assert_array_equal(out["s40"], out["s64"])
    stored = np.load(rgb_run / "run" / "scores.npz")
    anomalous = stored["test_scores"][stored["test_labels"] == 1]
    assert all(np.min(np.abs(np.array(out["s64"]) - s)) < 1e-6 for s in anomalous)
    assert out["map40"] == [8, 40, 40] and out["map64"] == [8, 64, 64]
    assert out["dtype"] == "float32" and out["map_min"] >= 0
    # one image (H, W, C) is scored as a batch of one; oneDNN may pick other kernels for batch 1
    # than for 8 (AVX2 machines: a relative difference of 2e-7), so equal to float tolerance
    np.testing.assert_allclose(out["one"], out["s40"][:1], rtol=1e-5)
    meta = out["metadata"]
    assert meta["image_size"] == 64 and meta["padded"] is False and meta["channels"] == 3
    assert meta["resize"]["method"] == "bilinear" and meta["anomaly_map"] is True
    assert "images must be square" in out["square"]


def test_a_folder_model_resizes_28x28_arrays_instead_of_padding(rgb_run, mnist):
    """The old silent mismatch: a folder model given 28x28 arrays padded them."""
    from anomaly_toolbox import api
    from anomaly_toolbox.data.folders import fit_to

    detector = api.load(rgb_run / "run" / "saved_model")
    x28 = _tinted(mnist.x_test[:4], 28)
    resized = np.stack([fit_to(x, 64) for x in x28])
    np.testing.assert_array_equal(detector.score(x28), detector.score(resized))
    assert detector.anomaly_map(x28, batch_size=3).shape == (4, 28, 28)


def test_a_benchmark_model_maps_28x28_inputs_on_their_own_grid(tmp_path, images):
    import tensorflow as tf
    from conftest import tiny_model

    from anomaly_toolbox.data.preprocessing import to_model_input
    from anomaly_toolbox.run import export

    model = tiny_model("autoencoder")
    export.save(model, str(tmp_path / "sm"), 1, 0.5, {"model": "autoencoder"})
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    x28 = images[0][:3]
    maps = loaded.anomaly_map(x28).numpy()
    assert maps.shape == (3, 28, 28)
    full = export.reconstruction_map(model, to_model_input(x28)).numpy()
    np.testing.assert_allclose(maps, full[:, 2:30, 2:30], atol=1e-6)
    assert loaded.anomaly_map(np.pad(x28, [(0, 0), (2, 2), (2, 2)])).shape == (3, 32, 32)


def _score_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "anomaly_toolbox.score", *args],
                          capture_output=True, text=True, env=env)


def test_score_writes_map_overlays_on_one_scale_and_map_max(rgb_run, tmp_path):
    import csv

    folder, out, maps = rgb_run / "data" / "test" / "anomalous", tmp_path / "s.csv", tmp_path / "m"
    proc = _score_cli(f"--saved_model={rgb_run / 'run' / 'saved_model'}", f"--input={folder}",
                      f"--output={out}", f"--maps_dir={maps}", "--batch_size=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["id", "score", "is_anomaly", "map_max"] and len(rows) == 8
    assert sorted(os.listdir(maps)) == [f"{i:02d}.png_map.png" for i in range(8)]  # no temp left
    png = Image.open(maps / "00.png_map.png")
    assert png.size[0] > 2 * png.size[1] and all(float(r["map_max"]) > 0 for r in rows)


def test_a_bad_maps_dir_is_one_error_and_writes_nothing(rgb_run, tmp_path):
    blocker, out = tmp_path / "file", tmp_path / "s.csv"
    blocker.write_text("")
    folder = rgb_run / "data" / "test" / "anomalous"
    proc = _score_cli(f"--saved_model={rgb_run / 'run' / 'saved_model'}", f"--input={folder}",
                      f"--output={out}", f"--maps_dir={blocker / 'maps'}")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "invalid maps_dir" in proc.stderr and not out.exists()
    old = os.path.join(os.path.dirname(__file__), "data", "ganomaly_saved_model_5d5a856")
    proc = _score_cli(f"--saved_model={old}", f"--input={folder}", f"--output={out}",
                      f"--maps_dir={tmp_path / 'maps'}")
    assert proc.returncode == 2 and "has none" in proc.stderr and not out.exists()
    assert not (tmp_path / "maps").exists()  # refused: the folder was never made


def test_score_refuses_its_input_or_an_unwritable_output_before_drawing_maps(rgb_run, tmp_path):
    import shutil

    model = f"--saved_model={rgb_run / 'run' / 'saved_model'}"
    folder, maps = tmp_path / "images", tmp_path / "maps"
    shutil.copytree(rgb_run / "data" / "test" / "anomalous", folder)
    proc = _score_cli(model, f"--input={folder}", f"--output={tmp_path / 'no' / 's.csv'}",
                      f"--maps_dir={maps}")
    assert proc.returncode == 2 and "invalid output" in proc.stderr and not maps.exists()
    one = folder / sorted(os.listdir(folder))[0]
    before = one.read_bytes()
    proc = _score_cli(model, f"--input={one}", f"--output={one}")
    assert "a file other than the input" in proc.stderr and one.read_bytes() == before
    both = tmp_path / "both"  # the CSV inside the maps folder the call makes
    proc = _score_cli(model, f"--input={folder}", f"--output={both / 's.csv'}",
                      f"--maps_dir={both}")
    assert proc.returncode == 0 and len(os.listdir(both)) == len(os.listdir(folder)) + 1
    (folder / "zz_broken.png").write_bytes(b"not a png")
    proc = _score_cli(model, f"--input={folder}", f"--output={tmp_path / 's.csv'}",
                      f"--maps_dir={maps / 'a' / 'b'}")
    assert proc.returncode == 2 and "zz_broken.png" in proc.stderr and not maps.exists()
