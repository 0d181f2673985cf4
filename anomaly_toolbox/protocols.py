"""Leave-one-class-out splits: one class is the anomaly, the others are normal.

`pooled` (Zenati et al. 2018, used by the survey): train + test pooled; 80 % of the normal
images train; the rest of the normals plus every anomalous image form the evaluation pool,
of which a stratified 25 % is validation and 75 % test (so training data is exactly the
survey's, and test is a random subset of the survey's test with the same anomaly share).

`official`: train on the official train split without the anomalous class (10 % of those
normals held out for validation), test on the official test split untouched. Validation
anomalies come from the official train split's anomalous class, which training never uses,
in the same share as the test split.

Splits depend only on (dataset, anomalous class, protocol, split seed).
"""

from dataclasses import dataclass

import numpy as np

from anomaly_toolbox.errors import UsageError

PROTOCOLS = ("pooled", "official")
POOLED_TRAIN_SHARE = 0.8
POOLED_VAL_SHARE = 0.25
OFFICIAL_VAL_SHARE = 0.1


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray  # normal images only
    x_val: np.ndarray
    y_val: np.ndarray  # 1 = anomaly
    x_test: np.ndarray
    y_test: np.ndarray

    def limited(self, n):
        """The first n images of each split: for smoke tests and quick checks, never for results."""
        return Splits(self.x_train[:n], self.x_val[:n], self.y_val[:n], self.x_test[:n],
                      self.y_test[:n])

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


def _split_stratified(x, y, share, rng):
    """Moves `share` of each label of (x, y) into the first returned pair."""
    first = []
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == label))
        first.append(idx[: int(round(share * len(idx)))])
    first = np.sort(np.concatenate(first))
    mask = np.zeros(len(y), bool)
    mask[first] = True
    return x[mask], y[mask], x[~mask], y[~mask]


def _pooled(raw, k, rng):
    x = np.concatenate([raw.x_train, raw.x_test])
    labels = np.concatenate([raw.y_train, raw.y_test])
    normal = rng.permutation(np.flatnonzero(labels != k))
    n_train = int(round(POOLED_TRAIN_SHARE * len(normal)))
    train_idx = np.sort(normal[:n_train])
    eval_idx = np.sort(np.concatenate([normal[n_train:], np.flatnonzero(labels == k)]))
    x_eval, y_eval = x[eval_idx], (labels[eval_idx] == k).astype(np.int32)
    x_val, y_val, x_test, y_test = _split_stratified(x_eval, y_eval, POOLED_VAL_SHARE, rng)
    return Splits(x[train_idx], x_val, y_val, x_test, y_test)


def _official(raw, k, rng):
    normal = rng.permutation(np.flatnonzero(raw.y_train != k))
    n_val = int(round(OFFICIAL_VAL_SHARE * len(normal)))
    val_normal, train_idx = np.sort(normal[:n_val]), np.sort(normal[n_val:])
    y_test = (raw.y_test == k).astype(np.int32)
    test_share = y_test.mean()
    n_val_anom = int(round(n_val * test_share / (1 - test_share)))
    pool = np.flatnonzero(raw.y_train == k)
    val_anom = np.sort(rng.permutation(pool)[:n_val_anom])
    val_idx = np.concatenate([val_normal, val_anom])
    y_val = np.concatenate([np.zeros(len(val_normal), np.int32), np.ones(len(val_anom), np.int32)])
    return Splits(raw.x_train[train_idx], raw.x_train[val_idx], y_val, raw.x_test, y_test)


def make_splits(raw, anomalous_class, protocol="pooled", split_seed=0):
    if protocol not in PROTOCOLS:
        raise UsageError("protocol", protocol, f"one of {', '.join(PROTOCOLS)}")
    classes = np.unique(np.concatenate([raw.y_train, raw.y_test]))
    if anomalous_class not in classes:
        raise UsageError("anomalous_class", anomalous_class,
                         f"a class of {raw.name}: {classes.min()}..{classes.max()}")
    rng = np.random.default_rng(split_seed)
    return (_pooled if protocol == "pooled" else _official)(raw, int(anomalous_class), rng)
