"""Divergence handling and bad input that the end-to-end tests do not reach."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import DATA_DIR

from anomaly_toolbox.run import training
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.data.inputs import read_input

TINY = {"epochs": 3, "batch_size": 32, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def _config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_best_epoch(tmp_path, monkeypatch):
    real = training.train_dataset

    def poisoned(images, batch_size, seed, epoch, *rest):
        ds = real(images, batch_size, seed, epoch, *rest)
        if epoch == 1:  # the 3rd batch of the 2nd epoch is NaN
            ds = ds.enumerate().map(lambda i, x: tf.where(i == 2, x * np.nan, x))
        return ds

    monkeypatch.setattr(training, "train_dataset", poisoned)
    out = tmp_path / "run"
    with pytest.raises(training.DivergenceError, match="epoch 2, step 3"):
        training.fit("ganomaly", "mnist", 4, str(out), config=_config(tmp_path), limit=200,
                     data_dir=DATA_DIR, verbose=0)
    results = json.loads((out / "results.json").read_text())
    assert results["selected_epoch"] == 1 and results["diverged"].startswith("loss became NaN")
    assert np.isfinite(results["test"]["auprc"]) and (out / "saved_model" / "saved_model.pb").exists()


def test_output_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="invalid output_dir: .*file/run.*writable directory"):
        training.fit("ganomaly", "mnist", 4, str(blocker / "run"), config=_config(tmp_path),
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


def test_non_finite_validation_scores_stop_like_a_diverging_loss(tmp_path, monkeypatch):
    from anomaly_toolbox.run import callbacks

    real, calls = callbacks.score_images, []

    def nan_in_epoch_2(model, images, **kwargs):
        calls.append(1)
        scores = real(model, images, **kwargs)
        return scores * np.nan if len(calls) == 2 else scores  # validation of epoch 2

    monkeypatch.setattr(callbacks, "score_images", nan_in_epoch_2)
    out = tmp_path / "run"
    with pytest.raises(training.DivergenceError, match="validation scores became NaN/inf in epoch 2"):
        training.fit("ganomaly", "mnist", 4, str(out), config=_config(tmp_path), limit=200,
                     data_dir=DATA_DIR, verbose=0)
    results = json.loads((out / "results.json").read_text())
    assert results["selected_epoch"] == 1 and results["diverged"].startswith("validation scores")
    assert np.isfinite(results["test"]["auprc"]) and (out / "saved_model" / "saved_model.pb").exists()


TWO_EPOCHS = {**TINY, "epochs": 2}


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """Epoch 2 (the best) is committed, then the run dies before copying it to checkpoints/best;
    the re-run must export epoch 2's weights, not the stale best (epoch 1)."""
    tmp = tmp_path_factory.mktemp("kill")
    config = tmp / "c.json"
    config.write_text(json.dumps(TWO_EPOCHS))
    args = dict(model="ganomaly", dataset="mnist", anomalous_class=3, output_dir=str(tmp / "run"),
                config=str(config), limit=300, data_dir=DATA_DIR, verbose=0)
    from anomaly_toolbox.run import callbacks

    real = callbacks.publish_best

    def killed_at_epoch_2(run_dir, last_path, epoch):
        if epoch == 2:
            raise KeyboardInterrupt("killed between the commit and the best copy")
        real(run_dir, last_path, epoch)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(callbacks, "publish_best", killed_at_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            training.fit(**args)
    assert tf.train.latest_checkpoint(str(tmp / "run" / "checkpoints" / "best")).endswith("ckpt-1")
    return tmp, args, training.fit(**args)


def test_a_kill_between_commit_and_best_copy_exports_the_selected_epoch(killed_then_resumed, mnist):
    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.run import export

    tmp, args, results = killed_then_resumed
    out = tmp / "run"
    assert results["selected_epoch"] == 2 and [h["epoch"] for h in results["history"]] == [1, 2]
    assert tf.train.latest_checkpoint(str(out / "checkpoints" / "best")).endswith("ckpt-2")
    splits = load_splits("mnist", 3, data_dir=DATA_DIR, limit=300)
    loaded, _ = export.load(str(out / "saved_model"))
    stored = np.load(out / "scores.npz")
    np.testing.assert_allclose(loaded.score(splits.x_val).numpy(), stored["val_scores"], atol=1e-5)
    # scores trace back to images: indices into the pooled train + test concatenation
    pooled = np.concatenate([mnist.x_train, mnist.x_test])
    np.testing.assert_array_equal(pooled[stored["test_index"]], splits.x_test)
    np.testing.assert_array_equal(
        np.concatenate([mnist.y_train, mnist.y_test])[stored["val_index"]] == 3, stored["val_labels"])


def test_results_identify_the_data_without_paths(killed_then_resumed):
    tmp, _, results = killed_then_resumed
    text = (tmp / "run" / "results.json").read_text()
    assert results["data_source"]["kind"] == "idx" and results["data_source"]["dataset"] == "mnist"
    assert len(results["data_source"]["sha256"]) == 4
    assert str(tmp) not in text and os.path.abspath(DATA_DIR) not in text and '"/' not in text


def test_a_finished_run_is_not_run_again_and_a_different_one_is_named(killed_then_resumed,
                                                                       capsys):
    tmp, args, results = killed_then_resumed
    out = tmp / "run"
    logs = sorted(os.listdir(out / "logs"))
    stamp = os.path.getmtime(out / "results.json")
    assert training.fit(**args) == results
    assert f"already finished: {out / 'results.json'}" in capsys.readouterr().out
    assert sorted(os.listdir(out / "logs")) == logs and os.path.getmtime(out / "results.json") == stamp
    with pytest.raises(UsageError, match=r"config\.epochs: 2 -> 3, train_seed: 0 -> 1; choose a "
                                         r"new --output_dir"):
        training.fit(**{**args, "epochs": 3, "train_seed": 1})
