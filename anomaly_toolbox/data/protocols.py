"""Leave-one-class-out splits: one class is the anomaly, the others are normal.

`pooled` (Zenati et al. 2018's EGBAD protocol): train + test pooled; 80 % of the normal
images train; the rest of the normals plus every anomalous image form the evaluation pool,
of which a stratified 25 % is validation and 75 % test (test is a random subset of Zenati's
test with the same anomaly share). Which protocol the survey used is unchecked (README).

`official`: train on the official train split without the anomalous class (10 % of those
normals held out for validation), test on the official test split untouched. Validation
anomalies come from the official train split's anomalous class, which training never uses,
in the same share as the test split.

Splits depend only on (dataset, anomalous class, protocol, split seed).
"""

import numpy as np

from anomaly_toolbox.data.datasets import NUM_CLASSES
from anomaly_toolbox.data.splits import Splits, split_stratified
from anomaly_toolbox.errors import UsageError

PROTOCOLS = ("pooled", "official")
POOLED_TRAIN_SHARE = 0.8
POOLED_VAL_SHARE = 0.25
OFFICIAL_VAL_SHARE = 0.1


def _pooled(raw, k, rng):
    x = np.concatenate([raw.x_train, raw.x_test])
    labels = np.concatenate([raw.y_train, raw.y_test])
    normal = rng.permutation(np.flatnonzero(labels != k))
    n_train = int(round(POOLED_TRAIN_SHARE * len(normal)))
    train_idx = np.sort(normal[:n_train])
    eval_idx = np.sort(np.concatenate([normal[n_train:], np.flatnonzero(labels == k)]))
    val, test = (eval_idx[i] for i in split_stratified(labels[eval_idx] == k, POOLED_VAL_SHARE,
                                                          rng))
    return Splits(x[train_idx], x[val], (labels[val] == k).astype(np.int32), x[test],
                  (labels[test] == k).astype(np.int32), "benchmark", raw.source, val, test)


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
    return Splits(raw.x_train[train_idx], raw.x_train[val_idx], y_val, raw.x_test, y_test,
                  "benchmark", raw.source, val_idx, np.arange(len(y_test)))


def check(dataset, anomalous_class, protocol, classes=range(NUM_CLASSES)):
    """Refuses an unknown protocol or a class the dataset lacks: its declared classes before
    the data is read, the labels it holds after."""
    if protocol not in PROTOCOLS:
        raise UsageError("protocol", protocol, f"one of {', '.join(PROTOCOLS)}")
    if isinstance(anomalous_class, (bool, np.bool_)) or anomalous_class not in classes:
        # True == 1: fit(..., True, ...) trained class 1 and recorded `true` as its class
        raise UsageError("anomalous_class", anomalous_class,
                         f"a class of {dataset}: {min(classes)}..{max(classes)}")


def make_splits(raw, anomalous_class, protocol="pooled", split_seed=0):
    check(raw.name, anomalous_class, protocol, np.unique(np.concatenate([raw.y_train, raw.y_test])))
    rng = np.random.default_rng(split_seed)
    return (_pooled if protocol == "pooled" else _official)(raw, int(anomalous_class), rng)
