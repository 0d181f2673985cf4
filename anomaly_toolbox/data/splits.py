"""`Splits`: the images a run trains, validates and tests on, as one frozen object."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray  # normal images only, uint8 (N, H, W) or (N, H, W, C), or files on
    # disk read as such (folders.ImageFiles: streamed by the training pipeline)
    x_val: np.ndarray
    y_val: np.ndarray  # 1 = anomaly
    x_test: np.ndarray
    y_test: np.ndarray
    kind: str = "benchmark"  # "benchmark" (a named dataset under a protocol) or "folder"
    source: dict = None  # what identifies the data (see datasets.py), for results.json
    # positions of the val / test images in the image list they were drawn from, so a score
    # can be traced to its image (the list is named in the README, "What a run writes")
    val_index: np.ndarray = None
    test_index: np.ndarray = None

    @property
    def channels(self):
        return self.x_train.shape[-1] if self.x_train.ndim == 4 else 1

    @property
    def padded(self):
        """Benchmark images are zero-padded 28 -> 32 (the survey's input); folder images resized."""
        return self.kind != "folder"

    def limited(self, n):
        """The first n images of each split: for smoke tests and quick checks, never for results."""
        return Splits(self.x_train[:n], self.x_val[:n], self.y_val[:n], self.x_test[:n],
                      self.y_test[:n], self.kind, self.source, self.val_index[:n],
                      self.test_index[:n])

    def counts(self):
        def share(y):
            return round(float(y.mean()), 4) if len(y) else 0.0
        return {
            "train": len(self.x_train),
            "val": len(self.y_val), "val_anomalies": int(self.y_val.sum()),
            "val_anomaly_share": share(self.y_val),
            "test": len(self.y_test), "test_anomalies": int(self.y_test.sum()),
            "test_anomaly_share": share(self.y_test),
        }


def split_stratified(y, share, rng):
    """Indices of `share` of each label of y (sorted), and of the rest."""
    first = []
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == label))
        first.append(idx[: int(round(share * len(idx)))])
    first = np.sort(np.concatenate(first))
    mask = np.zeros(len(y), bool)
    mask[first] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)
