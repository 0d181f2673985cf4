"""MNIST / Fashion-MNIST as uint8 arrays, from local IDX files first and tfds last.

Local sources come first so that an offline machine never waits on a download.
"""

import gzip
import math
import os
import socket
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from anomaly_toolbox.errors import DataError, UsageError
from anomaly_toolbox.files import sha256

DATASETS = ("mnist", "fashion_mnist")
NUM_CLASSES = 10  # of each: ten digits, ten kinds of clothing
DATA_DIR_ENV = "ANOMALY_TOOLBOX_DATA_DIR"
# Debian's `dataset-fashion-mnist` package installs the original files here.
SYSTEM_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 0x0803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x0801  # unsigned byte, 1 dimension
# tfds downloads MNIST / Fashion-MNIST from here; one short probe instead of minutes of retries.
TFDS_HOST, PROBE_SECONDS = ("storage.googleapis.com", 443), 3


@dataclass(frozen=True)
class RawDataset:
    name: str
    x_train: np.ndarray  # (N, 28, 28) uint8
    y_train: np.ndarray  # (N,) uint8 class ids
    x_test: np.ndarray
    y_test: np.ndarray
    source: dict  # what identifies the data (name, kind, file names and SHA-256), no paths
    num_classes: int = NUM_CLASSES


def read_idx(path, expected_magic):
    """Reads one (optionally gzip-compressed) IDX file, as much data as its header declares and
    no more: a decompression bomb costs what the header admits, never what the archive holds."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            dims, size = _idx_dims(path, f, expected_magic)
            data = np.empty(size, np.uint8)  # untouched until read
            got = _read_into(f, memoryview(data))
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as e:  # truncated, non-gzip or corrupted files
        raise DataError(f"{path}: cannot read ({e})") from e
    if got != data.size or extra:
        raise DataError(f"{path}: IDX header says {dims} = {data.size} bytes of data, file has "
                        + (f"{got}" if got != data.size else "more"))
    return data.reshape(dims)


def _idx_dims(path, f, expected_magic):
    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(head)} bytes)")
    magic = struct.unpack(">I", head)[0]
    if magic != expected_magic:
        raise DataError(f"{path}: wrong IDX magic number {magic:#06x}, expected {expected_magic:#06x}")
    ndim = magic & 0xFF
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw)
    size, memory = math.prod(dims), _physical_memory()  # Python ints: no int64 wrap-around
    if memory and size > memory:
        raise DataError(f"{path}: IDX header says {dims} = {size} bytes of data, more than this "
                        f"machine's {memory} bytes of memory (RAM, or the container's limit)")
    return dims, size


def _read_into(f, view):
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _physical_memory():
    """Bytes of RAM, or the container's memory limit (cgroup v2 or v1) when lower: a container
    is killed at its limit, not at the host's RAM. None where neither is known."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = None
    limits = [ram] if ram else []
    for path in CGROUP_LIMITS:
        try:
            with open(path) as f:
                limits.append(int(f.read().strip()))  # "max" (no limit): ValueError
        except (OSError, ValueError):
            pass
    return min(limits) if limits else None


def read_idx_pair(images_path, labels_path, num_classes=NUM_CLASSES):
    images = read_idx(images_path, _IMAGES_MAGIC)
    labels = read_idx(labels_path, _LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels do not match {len(images)} images "
                        f"in {images_path}")
    if labels.size and labels.max() >= num_classes:
        raise DataError(f"{labels_path}: label {labels.max()} outside 0..{num_classes - 1}")
    return images, labels


def _from_idx_dir(name, folder, kind="idx"):
    arrays = {}
    for split, (images, labels) in IDX_FILES.items():
        arrays[split] = read_idx_pair(os.path.join(folder, images), os.path.join(folder, labels))
    files = {f: sha256([os.path.join(folder, f)]) for pair in IDX_FILES.values() for f in pair}
    return RawDataset(name, *arrays["train"], *arrays["test"],
                      source={"dataset": name, "kind": kind, "sha256": files})


def has_idx_files(folder):
    return all(os.path.isfile(os.path.join(folder, f)) for pair in IDX_FILES.values() for f in pair)


def _online():
    try:
        socket.create_connection(TFDS_HOST, timeout=PROBE_SECONDS).close()
        return True
    except OSError:
        return False


def _from_tfds(name):
    """tfds's own warnings (a broken cache folder) are hidden: a failure is reported in load's
    one error line."""
    from absl import logging

    level = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        return _load_tfds(name)
    finally:
        logging.set_verbosity(level)


def _load_tfds(name):
    import tensorflow_datasets as tfds  # slow import; only when local sources failed

    builder = tfds.builder(name)
    if not builder.is_prepared() and not _online():  # else tfds retries for minutes
        raise ConnectionError(f"offline: no answer from {TFDS_HOST[0]} within {PROBE_SECONDS} s, "
                              f"and {name} is not in tfds's cache")
    arrays = {}
    for split in ("train", "test"):
        x, y = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
        arrays[split] = (x[..., 0].astype(np.uint8), y.astype(np.uint8))
    return RawDataset(name, *arrays["train"], *arrays["test"],
                      source={"dataset": name, "kind": "tfds", "version": str(builder.version)})


def check(name, data_dir=None):
    if name not in DATASETS:
        raise UsageError("dataset", name, f"one of {', '.join(DATASETS)} or folder:PATH")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise UsageError("data_dir", data_dir, "an existing directory")


def load(name, data_dir=None):
    """Returns the official train and test splits of `name`.

    Looks in `data_dir` (or $ANOMALY_TOOLBOX_DATA_DIR), then in system folders, then tfds.
    A folder that has the files but holds corrupt data is an error, not a reason to move on.
    """
    check(name, data_dir)
    tried = []
    candidates = []
    if data_dir:
        candidates.append(("--data_dir", data_dir))
    if os.environ.get(DATA_DIR_ENV):
        candidates.append((f"${DATA_DIR_ENV}", os.environ[DATA_DIR_ENV]))
    for label, root in candidates:
        if not os.path.isdir(root):  # only $VAR gets here: set to a file or a mistyped path, it
            # was passed over for tensorflow-datasets (online: a download), as --data_dir is not
            raise UsageError(label, root, "an existing directory, or unset")
        folder = os.path.join(root, name)
        if has_idx_files(folder):
            try:
                return _from_idx_dir(name, folder)
            except DataError as e:
                raise UsageError(label.lstrip("-"), root, f"a folder whose {name}/ holds intact "
                                                          f"IDX files; {e}") from e
        tried.append(f"{label}: {folder} (IDX files not all present)")
    if name in SYSTEM_DIRS:
        if has_idx_files(SYSTEM_DIRS[name]):
            return _from_idx_dir(name, SYSTEM_DIRS[name], "debian")
        tried.append(f"{SYSTEM_DIRS[name]} (Debian package dataset-fashion-mnist not installed)")
    try:
        return _from_tfds(name)
    except Exception as e:  # tfds raises many kinds of errors offline; report, don't crash here
        tried.append(f"tensorflow-datasets: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    raise DataError(  # one line, as every error: what was tried, then what to do
        f"dataset {name!r} not found (tried {'; '.join(tried)}): give --data_dir=DIR or "
        f"${DATA_DIR_ENV}=DIR where DIR/{name}/ holds "
        + ", ".join(f for pair in IDX_FILES.values() for f in pair) + ", or go online for tfds")
