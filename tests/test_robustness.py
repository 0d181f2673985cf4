"""Divergence handling and bad input that the end-to-end tests do not reach."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import DATA_DIR

from anomaly_toolbox.run import training
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.score import read_input

TINY = {"epochs": 3, "batch_size": 32, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def _config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_best_epoch(tmp_path, monkeypatch):
    real = training.train_dataset

    def poisoned(images, batch_size, seed, epoch):
        ds = real(images, batch_size, seed, epoch)
        if epoch == 1:  # the 3rd batch of the 2nd epoch is NaN
            ds = ds.enumerate().map(lambda i, x: tf.where(i == 2, x * np.nan, x))
        return ds

    monkeypatch.setattr(training, "train_dataset", poisoned)
    out = tmp_path / "run"
    with pytest.raises(training.DivergenceError, match="epoch 2, step 3"):
        training.run("ganomaly", "mnist", 4, str(out), config=_config(tmp_path), limit=200,
                     data_dir=DATA_DIR, verbose=0)
    results = json.loads((out / "results.json").read_text())
    assert results["selected_epoch"] == 1 and results["diverged"].startswith("loss became NaN")
    assert np.isfinite(results["test"]["auprc"]) and (out / "saved_model" / "saved_model.pb").exists()


def test_output_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="invalid output_dir: .*file/run.*writable directory"):
        training.run("ganomaly", "mnist", 4, str(blocker / "run"), config=_config(tmp_path),
                     limit=50, data_dir=DATA_DIR)


def test_unreadable_and_mismatched_images(tmp_path, images):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(images[0][0]).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"this is not a png")
    with pytest.raises(UsageError, match="invalid input: .*b.png.*readable image"):
        read_input(str(folder))
    (folder / "b.png").unlink()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "c.png")
    with pytest.raises(UsageError, match="same size"):
        read_input(str(folder))
    (folder / "c.png").unlink()
    ids, x = read_input(str(folder))
    assert ids == ["a.png"] and x.shape == (1, 28, 28, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[0, ..., 0], images[0][0])


def test_idx_input_and_missing_input(tmp_path, data_dir):
    ids, x = read_input(f"{data_dir}/mnist/t10k-images-idx3-ubyte.gz")
    assert len(ids) == 10000 and x.shape == (10000, 28, 28, 1)
    with pytest.raises(UsageError, match="invalid input: .*nothing.npy"):
        read_input(str(tmp_path / "nothing.npy"))
    (tmp_path / "bad.idx").write_bytes(b"\x00\x00\x08\x01" + bytes(8))
    with pytest.raises(UsageError, match="IDX images file"):
        read_input(str(tmp_path / "bad.idx"))
