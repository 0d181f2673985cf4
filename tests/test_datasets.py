import gzip
import os
import struct

import numpy as np
import pytest

from anomaly_toolbox.data import datasets
from anomaly_toolbox.errors import DataError
from anomaly_toolbox.errors import UsageError


def test_loads_official_splits_from_idx_files(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.source["dataset"] == "mnist" and mnist.source["kind"] == "idx"
    assert mnist.source["sha256"]["t10k-labels-idx1-ubyte.gz"] == \
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"


def _write_idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload)


def test_truncated_idx_names_the_file(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    _write_idx(path, 0x0803, (10, 28, 28), bytes(28 * 28 * 9))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*7056"):
        datasets.read_idx(path, 0x0803)


def test_wrong_magic_number(tmp_path):
    path = str(tmp_path / "x.gz")
    _write_idx(path, 0x0801, (10,), bytes(10))
    with pytest.raises(DataError, match="magic number 0x0801, expected 0x0803"):
        datasets.read_idx(path, 0x0803)


def test_not_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "y.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        datasets.read_idx(str(path), 0x0801)


def test_labels_must_match_images(tmp_path):
    images, labels = str(tmp_path / "i.gz"), str(tmp_path / "l.gz")
    _write_idx(images, 0x0803, (3, 2, 2), bytes(12))
    _write_idx(labels, 0x0801, (4,), bytes(4))
    with pytest.raises(DataError, match="4 labels do not match 3 images"):
        datasets.read_idx_pair(images, labels)
    _write_idx(labels, 0x0801, (3,), bytes([0, 1, 12]))
    with pytest.raises(DataError, match="label 12 outside 0..9"):
        datasets.read_idx_pair(images, labels)


def test_no_source_lists_every_place_tried(tmp_path, monkeypatch):
    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "_from_tfds", offline)
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion_mnist": str(tmp_path / "nowhere")})
    with pytest.raises(DataError) as e:
        datasets.load("fashion_mnist", str(tmp_path))
    message = str(e.value)
    assert str(tmp_path / "fashion_mnist") in message and "nowhere" in message
    assert "tensorflow-datasets: ConnectionError" in message and "--data_dir" in message
    assert "\n" not in message  # one error line (it was five)


def test_tfds_warnings_do_not_run_ahead_of_the_error(monkeypatch, capfd):
    """A broken tfds cache folder logged an absl warning before the `error:` line."""
    from absl import logging

    def broken_cache(name):
        logging.warning("Variant folder %s has no dataset_info.json", name)
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "_load_tfds", broken_cache)
    level = logging.get_verbosity()
    with pytest.raises(ConnectionError):
        datasets._from_tfds("mnist")
    assert "Variant folder" not in capfd.readouterr().err
    assert logging.get_verbosity() == level  # the process's own logging is left as it was


def test_bad_names_and_missing_data_dir(tmp_path):
    with pytest.raises(UsageError, match="invalid dataset: 'cifar'"):
        datasets.load("cifar")
    with pytest.raises(UsageError, match="invalid data_dir"):
        datasets.load("mnist", str(tmp_path / "missing"))


def test_environment_variable_is_a_source(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.DATA_DIR_ENV, data_dir)
    # an explicit folder without the files is passed over, the variable's folder is used
    assert datasets.load("fashion_mnist", str(tmp_path)).x_test.shape == (10000, 28, 28)


def test_the_idx_size_cap_is_the_containers_memory_limit_when_lower(tmp_path, monkeypatch):
    """A container is killed at its cgroup limit, not at the host's RAM the cap used to read."""
    path = str(tmp_path / "i.gz")
    _write_idx(path, 0x0803, (50, 28, 28), bytes(50 * 28 * 28))
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("max\n")  # cgroup v2 without a limit
    v1.write_text("30000\n")
    monkeypatch.setattr(datasets, "CGROUP_LIMITS", (str(v2), str(v1)))
    with pytest.raises(DataError, match="39200 bytes of data, more than this machine's 30000 "):
        datasets.read_idx(path, 0x0803)
    v1.write_text("40000\n")
    assert datasets.read_idx(path, 0x0803).shape == (50, 28, 28)


@pytest.mark.parametrize("value", ["file", "missing"])
def test_an_environment_variable_that_is_no_folder_is_refused(value, monkeypatch, tmp_path):
    """--data_dir that is no folder is refused; $ANOMALY_TOOLBOX_DATA_DIR set to a file or a
    mistyped path was passed over for tensorflow-datasets (online: a download, silently)."""
    def online(name):
        return "downloaded"

    (tmp_path / "file").write_text("")
    monkeypatch.setattr(datasets, "_from_tfds", online)
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / value))
    with pytest.raises(UsageError, match=rf"^invalid \$ANOMALY_TOOLBOX_DATA_DIR: "
                                         rf"'{tmp_path / value}' \(expected an existing directory"):
        datasets.load("mnist")
