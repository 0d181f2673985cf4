import numpy as np
import pytest

from anomaly_toolbox.data.datasets import RawDataset
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.data.protocols import make_splits


def _synthetic(n_train=600, n_test=200):
    """Images whose first two pixels encode a unique id, so splits can be traced back."""
    rng = np.random.default_rng(0)
    ids = np.arange(n_train + n_test)
    x = np.zeros((len(ids), 28, 28), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = ids // 256, ids % 256
    y = rng.integers(0, 10, len(ids)).astype(np.uint8)
    return RawDataset("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:], "test"), y


def _ids(images):
    return set((images[:, 0, 0].astype(int) * 256 + images[:, 0, 1]).tolist())


@pytest.mark.parametrize("protocol", ["pooled", "official"])
def test_splits_are_disjoint_and_train_is_normal(protocol):
    raw, labels = _synthetic()
    s = make_splits(raw, 3, protocol, split_seed=1)
    train, val, test = _ids(s.x_train), _ids(s.x_val), _ids(s.x_test)
    assert len(train) == len(s.x_train) and not (train & val or train & test or val & test)
    assert all(labels[i] != 3 for i in train)
    for x, y in ((s.x_val, s.y_val), (s.x_test, s.y_test)):
        id_list = (x[:, 0, 0].astype(int) * 256 + x[:, 0, 1])
        np.testing.assert_array_equal(y, labels[id_list] == 3)
        assert 0 < y.sum() < len(y)


def test_pooled_matches_the_survey_and_official_keeps_the_test_split():
    raw, labels = _synthetic()
    pooled = make_splits(raw, 3, "pooled", 0)
    n_normal = int(np.sum(labels != 3))
    assert len(pooled.x_train) == round(0.8 * n_normal)
    assert len(pooled.x_val) + len(pooled.x_test) == len(labels) - len(pooled.x_train)
    assert abs(pooled.y_val.mean() - pooled.y_test.mean()) < 0.05
    official = make_splits(raw, 3, "official", 0)
    np.testing.assert_array_equal(official.x_test, raw.x_test)
    assert _ids(official.x_train) | _ids(official.x_val) <= set(range(600))


def test_same_inputs_same_splits_and_the_seed_matters():
    raw, _ = _synthetic()
    a, b, c = (make_splits(raw, 5, "pooled", seed) for seed in (7, 7, 8))
    for field in ("x_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert _ids(a.x_train) != _ids(c.x_train)


def test_counts_on_real_mnist(mnist):
    counts = make_splits(mnist, 0, "pooled", 0).counts()
    anomalies = 5923 + 980
    assert counts["train"] == round(0.8 * (70000 - anomalies))
    assert counts["val_anomalies"] + counts["test_anomalies"] == anomalies
    official = make_splits(mnist, 0, "official", 0).counts()
    assert official["test"] == 10000 and official["test_anomalies"] == 980


def test_bad_protocol_and_class():
    raw, _ = _synthetic()
    with pytest.raises(UsageError, match="invalid protocol: 'loo'.*pooled, official"):
        make_splits(raw, 1, "loo")
    with pytest.raises(UsageError, match="invalid anomalous_class: 10.*0..9"):
        make_splits(raw, 10)
