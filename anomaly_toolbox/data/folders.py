"""Your own images: `--dataset=folder:PATH`.

PATH/train/ holds normal images; PATH/test/normal/ and PATH/test/anomalous/ are optional and
give metrics. PNG or JPEG, grayscale or RGB (all grayscale -> 1 channel, else 3), resized to
32x32. With test folders, their images are split stratified 25 % validation / 75 % test (as
the pooled protocol does); without, 10 % of train/ is held out as all-normal validation, the
last epoch is kept and the threshold is the 99th percentile of its scores.
"""

import os

import numpy as np

from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.files import sha256
from anomaly_toolbox.data.preprocessing import IMAGE_SIZE
from anomaly_toolbox.data.protocols import POOLED_VAL_SHARE
from anomaly_toolbox.data.splits import Splits, split_stratified

PREFIX = "folder:"
SUFFIXES = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
HOLDOUT_SHARE = 0.1


def read_images(path, channels=None, size=None):
    """(names, uint8 (N, H, W, C)) of the images in `path`; one clear error per bad file."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isdir(path):
        raise UsageError("input", path, "an existing folder of PNG/JPEG images")
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(SUFFIXES))
    opened = []
    for name in names:
        try:
            with Image.open(os.path.join(path, name)) as im:
                im.load()
                opened.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise UsageError("input", os.path.join(path, name), f"a readable image ({e})") from e
    if channels is None:
        channels = 1 if all(im.mode in GRAY_MODES for im in opened) else 3
    arrays = []
    for im in opened:
        im = im.convert("L" if channels == 1 else "RGB")
        if size and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arrays.append(np.asarray(im).reshape(im.size[1], im.size[0], channels))
    if len({a.shape for a in arrays}) > 1:
        raise UsageError("input", path, "images that all have the same size")
    images = np.stack(arrays) if arrays else np.zeros((0, size or 28, size or 28, channels), np.uint8)
    return names, images


def _source(path, names):
    """The images read, identified by count and one SHA-256 over relative names and contents."""
    names = sorted(names)
    return {"dataset": "folder", "kind": "folder", "files": len(names),
            "sha256": sha256([os.path.join(path, n) for n in names], names)}


def load_splits(spec, split_seed=0):
    """Splits for `folder:PATH`; the images' channel count decides the model's. Validation and
    test indices point into train/'s sorted file list, or into test/normal/'s then
    test/anomalous/'s."""
    path = spec[len(PREFIX):]
    train_dir = os.path.join(path, "train")
    if not os.path.isdir(train_dir):
        raise UsageError("dataset", spec, f"folder:PATH where PATH/train/ holds normal images "
                         f"({train_dir} does not exist)")
    names, x_train = read_images(train_dir, size=IMAGE_SIZE)
    names = [f"train/{n}" for n in names]
    if len(x_train) < 2:
        raise UsageError("dataset", spec, f"at least 2 images in {train_dir}, found {len(x_train)}")
    channels = x_train.shape[-1]
    rng = np.random.default_rng(split_seed)
    normal_dir, anomalous_dir = (os.path.join(path, "test", d) for d in ("normal", "anomalous"))
    if os.path.isdir(normal_dir) and os.path.isdir(anomalous_dir):
        normal_names, normal = read_images(normal_dir, channels, IMAGE_SIZE)
        anomalous_names, anomalous = read_images(anomalous_dir, channels, IMAGE_SIZE)
        if not len(normal) or not len(anomalous):
            raise UsageError("dataset", spec, "images in both test/normal/ and test/anomalous/")
        names += [f"test/normal/{n}" for n in normal_names] + \
            [f"test/anomalous/{n}" for n in anomalous_names]
        x = np.concatenate([normal, anomalous])
        y = np.concatenate([np.zeros(len(normal), np.int32), np.ones(len(anomalous), np.int32)])
        val, test = split_stratified(y, POOLED_VAL_SHARE, rng)
        return Splits(x_train, x[val], y[val], x[test], y[test], "folder", _source(path, names),
                      val, test)
    order = rng.permutation(len(x_train))
    n_val = max(1, int(round(HOLDOUT_SHARE * len(x_train))))
    empty = np.zeros((0,) + x_train.shape[1:], np.uint8)
    val = np.sort(order[:n_val])
    return Splits(x_train[np.sort(order[n_val:])], x_train[val], np.zeros(n_val, np.int32),
                  empty, np.zeros(0, np.int32), "folder", _source(path, names), val,
                  np.zeros(0, np.int64))
