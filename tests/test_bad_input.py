"""Bad input, broader (issue 16): each case gives one clear `error: ...` line, exit code 2,
nothing half-written and previous results intact."""

import errno
import fcntl
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import DATA_DIR, one_line_exit_2, tiny_model
from PIL import Image

from anomaly_toolbox import config as config_lib, files, models
from anomaly_toolbox.data import datasets, folders
from anomaly_toolbox.errors import DiskFullError, UsageError
from anomaly_toolbox.run import export, training
from anomaly_toolbox.run.rundir import RunDir

TINY = {"epochs": 1, "batch_size": 32, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def _config(tmp_path, **overrides):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**TINY, **overrides}))
    return str(path)


def test_offline_without_data_fails_within_seconds(tmp_path, monkeypatch):
    if datasets._online():
        pytest.skip("online: the tfds fallback would download")
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    started = time.time()
    with pytest.raises(datasets.DataError, match="offline"):
        datasets.load("mnist", str(tmp_path))
    assert time.time() - started < 30


def _idx_dir(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train", "t10k"):
        with gzip.open(folder / f"{name}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x0803, 50, 28, 28) + os.urandom(50 * 28 * 28))
        with gzip.open(folder / f"{name}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x0801, 50) + bytes(range(10)) * 5)
    return folder


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:len(b) // 2], "cannot read"),  # truncated gzip
    (lambda b: b[:30] + bytes(x ^ 0xFF for x in b[30:200]) + b[200:], "cannot read"),  # corrupted
    (lambda b: gzip.compress(gzip.decompress(b)[:-100]), "IDX header says"),  # truncated IDX
    (lambda b: gzip.compress(b"\x00\x00\x08\x03" + gzip.decompress(b)[4:8]), "truncated IDX"),
    (lambda b: gzip.compress(gzip.decompress(b) + bytes(10 ** 6)), "bytes of data, file has more"),
    # a bomb's header: 3.4 TB declared, refused before any data is read
    (lambda b: gzip.compress(struct.pack(">IIII", 0x0803, 2 ** 32 - 1, 28, 28) + bytes(10 ** 6)),
     "more than this machine's"),
    # products that wrap around in int64: negative, zero, or under the cap
    *((lambda b, d=d: gzip.compress(struct.pack(">IIII", 0x0803, *d)), "more than this machine's")
      for d in [(2 ** 32 - 1, 2 ** 32 - 1, 1), (2 ** 31, 2 ** 31, 4), (2 ** 32 - 1,) * 3]),
])
def test_corrupted_and_truncated_idx_files(tmp_path, capsys, damage, message):
    path = _idx_dir(tmp_path) / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    err = one_line_exit_2(capsys, lambda: datasets.load("mnist", str(tmp_path)))
    assert err.startswith(f"error: invalid data_dir: '{tmp_path}' (expected a folder whose "
                          "mnist/ holds intact IDX files; ")
    assert message in err and "t10k-images-idx3-ubyte.gz" in err


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": float("nan")}, "invalid config"),
    ({"batch_size": -8}, "invalid batch_size: -8"),
    ({"epochs": 10 ** 9}, "invalid epochs: 1000000000 (expected an integer in 1..10000)"),
    ({"batch_size": 10 ** 9}, "(expected an integer in 1..65536)"),
    ({"model": {"latent_dim": -4}}, "invalid config"),
    ({"model": {"learning_rate": float("inf")}}, "a finite value"),
    ({"model": [1]}, "model: [1] (expected an object of hyperparameters"),
    ({"model": "x"}, "model: 'x' (expected an object of hyperparameters"),
    ({"model": []}, "model: [] (expected an object of hyperparameters"),
])
def test_config_with_nan_negative_or_huge_values(tmp_path, capsys, overrides, message):
    out = tmp_path / "run"
    err = one_line_exit_2(capsys, lambda: training.fit(
        "ganomaly", "mnist", 0, str(out), config=_config(tmp_path, **overrides), data_dir=DATA_DIR))
    assert message in err and not out.exists()


@pytest.mark.parametrize("keywords, message", [
    ({"train_seed": -1}, "invalid train_seed: -1 (expected an integer in 0..4294967295)"),
    ({"split_seed": 2 ** 32}, "invalid split_seed: 4294967296"),
    ({"train_seed": "0"}, "invalid train_seed: '0'"),
    ({"epochs": True}, "invalid epochs: True"),
    ({"limit": 2.5}, "invalid limit: 2.5"),
    ({"limit": "40"}, "invalid limit: '40'"),
    ({"limit": 1}, "invalid limit: 1 (expected a split whose validation holds a normal image"),
])
def test_fit_keywords_are_refused_before_anything_is_written(tmp_path, capsys, keywords,
                                                             message):
    """Each once ended in numpy's, Keras' or the threshold's traceback, some after run.json was
    written (a corrected command was then refused as another run)."""
    if keywords.get("limit") == 1:  # the premise: the split's first validation image is a 3
        from anomaly_toolbox.data import load_splits

        assert load_splits("mnist", 3, data_dir=DATA_DIR).y_val[0] == 1
    out = tmp_path / "run"
    err = one_line_exit_2(capsys, lambda: training.fit(
        "ganomaly", "mnist", 3, str(out), config=_config(tmp_path), data_dir=DATA_DIR, **keywords))
    assert message in err and not out.exists()


def test_saved_model_from_another_tool_or_truncated(tmp_path, capsys):
    other = tf.Module()
    other.v = tf.Variable(2.0)
    other.f = tf.function(lambda x: x * other.v, input_signature=[tf.TensorSpec([None])])
    tf.saved_model.save(other, str(tmp_path / "other"))
    err = one_line_exit_2(capsys, lambda: export.load(str(tmp_path / "other")))
    assert "invalid saved_model" in err and "this one is not" in err
    shutil.copytree(tmp_path / "other", tmp_path / "cut")
    pb = tmp_path / "cut" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:pb.stat().st_size // 2])
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.uint8))
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.score",
                           f"--saved_model={tmp_path / 'cut'}", f"--input={tmp_path / 'x.npy'}",
                           f"--output={tmp_path / 's.csv'}"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid saved_model" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "s.csv").exists()


def test_channels_and_mixed_sizes(tmp_path, images, capsys):
    from anomaly_toolbox.data.inputs import read_input

    for channels in (0, 2):
        np.save(tmp_path / "x.npy", np.zeros((2, 28, 28, channels), np.uint8))
        err = one_line_exit_2(capsys, lambda: read_input(str(tmp_path / "x.npy"), 1))
        assert f"1-channel images, got {channels}" in err
    train = tmp_path / "train"
    train.mkdir()
    for i, image in enumerate(images[0][:6]):  # mixed sizes and a 2-channel (gray + alpha) PNG
        im = Image.fromarray(image).resize((28 + 4 * i, 28 + 4 * i))
        (im.convert("LA") if i == 0 else im).save(train / f"{i}.png")
    splits = folders.load_splits(f"folder:{tmp_path}")
    assert splits.x_train.shape[1:] == (32, 32, 1) and splits.source["files"] == 6
    (train / "empty.png").write_bytes(b"")
    err = one_line_exit_2(capsys, lambda: folders.load_splits(f"folder:{tmp_path}"))
    assert "empty.png" in err and "readable image" in err


def _without_root_powers():
    """preexec_fn for a child of root that obeys file permissions as any user does: without
    CAP_DAC_OVERRIDE (and _READ_SEARCH) in its bounding set, the exec'd Python has neither. Not
    setuid(nobody): the interpreter may live where nobody can reach it (/root/.pyenv)."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork

    def drop():
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop


def test_unwritable_output_folder(tmp_path):
    """Runs as root in CI too: the child of root drops the power to ignore permissions."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "anomaly_toolbox.train", "--model=ganomaly", "--dataset=mnist",
             f"--config={_config(tmp_path)}", "--limit=50", f"--data_dir={DATA_DIR}",
             f"--output_dir={folder / 'run'}"], capture_output=True, text=True, timeout=300,
            preexec_fn=_without_root_powers() if os.geteuid() == 0 else None)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()], \
            proc.stderr
        assert proc.stderr.startswith(f"error: invalid output_dir: '{folder / 'run'}'")
        assert "writable" in proc.stderr
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_full_disk_keeps_the_previous_results(tmp_path, capsys, monkeypatch):
    run_dir = RunDir(tmp_path)
    run_dir.write_results({"test": {"auprc": 0.5}})

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)
    err = one_line_exit_2(capsys, lambda: run_dir.write_results({"test": {"auprc": 0.9}}))
    assert "No space left on device" in err
    assert run_dir.results() == {"test": {"auprc": 0.5}} and os.listdir(tmp_path) == ["results.json"]
    monkeypatch.undo()

    def full(path, data, mode="w"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "write_atomic", full)
    out = tmp_path / "run"
    err = one_line_exit_2(capsys, lambda: training.fit(
        "ganomaly", "mnist", 0, str(out), config=_config(tmp_path), limit=50, data_dir=DATA_DIR))
    assert "No space left" in err and str(out) in err  # names the folder or its file
    assert os.listdir(out) == [".lock"]  # not even run.json: nothing half-written


def test_interrupted_export_keeps_the_previous_saved_model(tmp_path, images, monkeypatch):
    model = tiny_model("autoencoder")
    path = str(tmp_path / "saved_model")
    export.save(model, path, channels=1, threshold=0.5, metadata={"model": "autoencoder"})
    loaded, _ = export.load(path)
    before = loaded.score(images[0][:4]).numpy()
    real = tf.saved_model.save

    def dies_mid_way(module, target, **kwargs):
        real(module, target, **kwargs)
        os.remove(os.path.join(target, "saved_model.pb"))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.tf.saved_model, "save", dies_mid_way)
    other = models.get("autoencoder")(**{**models.get("autoencoder").DEFAULTS,
                                         "latent_dim": 8, "filters": [4, 8, 16]}, channels=1)
    with pytest.raises(DiskFullError, match="No space left"):
        export.save(other, path, channels=1, threshold=0.7, metadata={"model": "autoencoder"})
    monkeypatch.undo()
    loaded, _ = export.load(path)
    np.testing.assert_array_equal(loaded.score(images[0][:4]).numpy(), before)
    assert float(loaded.threshold.numpy()) == 0.5 and os.listdir(tmp_path) == ["saved_model"]


def test_a_second_process_training_into_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # what a training process holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        err = one_line_exit_2(capsys, lambda: training.fit(
            "ganomaly", "mnist", 0, str(out), config=_config(tmp_path), limit=50,
            data_dir=DATA_DIR))
    assert "another one is training into it" in err and sorted(os.listdir(out)) == [".lock"]


def test_bounds_are_documented_in_one_place():
    assert config_lib.TRAINING_MAX == {"epochs": 10_000, "batch_size": 65_536}
    with pytest.raises(UsageError, match="1..10000"):
        config_lib.resolve(models.get("ganomaly"), epochs=10_001)
