"""Data layer: named datasets under a protocol, or a folder of your own images, as `Splits`.

    from anomaly_toolbox.data import load_splits
    splits = load_splits("mnist", anomalous_class=3, protocol="pooled", data_dir="../shared/data")
"""

from anomaly_toolbox.data import datasets, folders, protocols
from anomaly_toolbox.data.splits import Splits
from anomaly_toolbox.errors import UsageError

__all__ = ["Splits", "load_splits"]


def load_splits(dataset, anomalous_class=None, protocol="pooled", split_seed=0, data_dir=None,
                limit=None, image_size=32):
    """Checks every argument once, then loads `dataset` ("mnist", "fashion_mnist" or
    "folder:PATH") split by `protocol`; `limit` keeps the first N images of each split. Folder
    images are resized to `image_size`; benchmark images stay 28x28 (padded at input time)."""
    if limit is not None and (isinstance(limit, bool) or limit <= 0):
        raise UsageError("limit", limit, "a positive number of images per split")
    if dataset.startswith(folders.PREFIX):
        splits = folders.load_splits(dataset, split_seed, image_size)
    else:
        if dataset not in datasets.DATASETS:
            raise UsageError("dataset", dataset,
                             f"one of {', '.join(datasets.DATASETS)} or folder:PATH")
        if protocol not in protocols.PROTOCOLS:
            raise UsageError("protocol", protocol, f"one of {', '.join(protocols.PROTOCOLS)}")
        raw = datasets.load(dataset, data_dir)
        splits = protocols.make_splits(raw, anomalous_class, protocol, split_seed)
    return splits.limited(limit) if limit else splits
