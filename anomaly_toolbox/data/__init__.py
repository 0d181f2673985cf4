"""Data layer: named datasets under a protocol, or a folder of your own images, as `Splits`;
and users' images for scoring (data/inputs.py).

    from anomaly_toolbox.data import load_splits
    splits = load_splits("mnist", anomalous_class=3, protocol="pooled", data_dir="../shared/data")

Importing it imports no TensorFlow (the loaders are imported on use), so that `check` can refuse
a command's bad arguments before TensorFlow loads.
"""

import os

from anomaly_toolbox.data.splits import Splits
from anomaly_toolbox.errors import UsageError, check_integer

__all__ = ["FOLDER", "Splits", "check", "data_identity", "load_splits"]
FOLDER = "folder:"  # the dataset "folder:PATH": your own images


def check(dataset, anomalous_class=None, protocol="pooled", data_dir=None, limit=None):
    """Refuses every argument of load_splits that is wrong before any data is read: the
    commands call it on their flags before importing TensorFlow, load_splits on its own."""
    from anomaly_toolbox.data import datasets, protocols

    if limit is not None:
        check_limit(limit)
    if dataset.startswith(FOLDER):
        train_dir = os.path.join(dataset[len(FOLDER):], "train")
        if not os.path.isdir(train_dir):
            raise UsageError("dataset", dataset, f"folder:PATH where PATH/train/ holds normal "
                             f"images ({train_dir} does not exist)")
        return
    datasets.check(dataset, data_dir)
    protocols.check(dataset, anomalous_class, protocol)


def data_identity(source):
    """What identifies the images a run read: a source's hashes (or tfds version) without where
    they were found (`kind`), so the same files under --data_dir or a system folder agree."""
    return {k: v for k, v in (source or {}).items() if k != "kind"}


def check_limit(limit):
    check_integer("limit", limit, 1, expected="a positive number of images per split")


def load_splits(dataset, anomalous_class=None, protocol="pooled", split_seed=0, data_dir=None,
                limit=None, image_size=32):
    """Checks every argument once, then loads `dataset` ("mnist", "fashion_mnist" or
    "folder:PATH") split by `protocol`; `limit` keeps the first N images of each split. Folder
    images are resized to `image_size`; benchmark images stay 28x28 (padded at input time)."""
    check(dataset, anomalous_class, protocol, data_dir, limit)
    if dataset.startswith(FOLDER):
        from anomaly_toolbox.data import folders

        splits = folders.load_splits(dataset, split_seed, image_size)
    else:
        from anomaly_toolbox.data import datasets, protocols

        splits = protocols.make_splits(datasets.load(dataset, data_dir), anomalous_class,
                                       protocol, split_seed)
    splits = splits.limited(limit) if limit else splits
    if not (splits.y_val == 0).any():  # no threshold can be chosen: refused before training
        which = f"the first {len(splits.y_val)}" if limit else f"all {len(splits.y_val)}"
        raise UsageError("limit" if limit else "dataset", limit or dataset, "a split whose "
                         f"validation holds a normal image ({which} validation images are "
                         "anomalies)")
    return splits
