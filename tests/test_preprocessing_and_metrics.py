import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from anomaly_toolbox import metrics
from anomaly_toolbox.data.preprocessing import eval_dataset, to_model_input, train_dataset


def test_fixed_affine_map_and_padding(images):
    x = to_model_input(images[0][:4]).numpy()
    assert x.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(x[:, :2], -1.0)  # zero padding is black
    np.testing.assert_allclose(x[:, 2:30, 2:30, 0], images[0][:4] / 127.5 - 1, atol=1e-6)
    # one image alone gets the same values as inside a batch: no batch statistics
    np.testing.assert_array_equal(to_model_input(images[0][1:2]).numpy(), x[1:2])
    padded = np.pad(images[0][:4], ((0, 0), (2, 2), (2, 2)))
    np.testing.assert_array_equal(to_model_input(padded.astype(np.float32)).numpy(), x)


def test_train_order_depends_only_on_seed_and_epoch(images):
    data = images[0][:40]

    def first(seed, epoch):
        return np.concatenate(list(train_dataset(data, 16, seed, epoch)))

    np.testing.assert_array_equal(first(0, 3), first(0, 3))
    assert not np.array_equal(first(0, 3), first(0, 4))
    assert sorted(first(0, 3).sum(axis=(1, 2, 3))) == sorted(first(1, 3).sum(axis=(1, 2, 3)))


def test_eval_keeps_order_and_remainder(images):
    batches = list(eval_dataset(images[0][:37], 16))
    assert [len(b) for b in batches] == [16, 16, 5]
    np.testing.assert_array_equal(np.concatenate(batches), to_model_input(images[0][:37]))


def test_metrics_match_sklearn_on_raw_unbounded_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = labels * 3.0 + rng.normal(0, 4, 500) + 100  # far outside [0, 1]
    result = metrics.ranking_metrics(scores, labels)
    assert result["auprc"] == pytest.approx(average_precision_score(labels, scores))
    assert result["auroc"] == pytest.approx(roc_auc_score(labels, scores))


def test_threshold_from_validation_is_applied_unchanged():
    val_labels = np.array([0, 0, 0, 1, 1])
    threshold = metrics.best_f1_threshold(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), val_labels)
    assert 0.3 < threshold <= 0.8
    result = metrics.evaluate(np.array([0.5, 0.85, 0.95, 0.1]), np.array([0, 1, 1, 1]), threshold)
    assert result["threshold"] == threshold
    assert result["precision"] == 1.0 and result["recall"] == pytest.approx(2 / 3)


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="1 scores are NaN"):
        metrics.ranking_metrics([0.1, np.nan, 0.3], [0, 1, 0])


@pytest.mark.parametrize("spec", ["fpr:2", "fpr:0", "fpr:", "foo", "fpr:x", "F1", "fpr:nan",
                                  # float() takes these; "f1 " was refused, "fpr:0.5 " was not
                                  "fpr:0.5 ", "fpr: 0.5", "fpr:0.0_5", "fpr:\t.5", "fpr:+0.5"])
def test_bad_threshold_specs_are_usage_errors(spec):
    from anomaly_toolbox.errors import UsageError

    with pytest.raises(UsageError, match=r"invalid threshold: .*\(expected f1 or fpr:RATE"):
        metrics.parse_threshold(spec)


@pytest.mark.parametrize("spec", ["fpr:0.5", "fpr:.5", "fpr:5e-1", "fpr:5E-01", "fpr:0.010"])
def test_plain_decimal_rates_are_read(spec):
    assert metrics.parse_threshold(spec) == ("fpr", float(spec[4:]))


def test_fpr_threshold_is_a_quantile_of_validation_normals():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(1000, int), np.ones(200, int)]
    scores = np.r_[rng.normal(0, 1, 1000), rng.normal(0.2, 1, 200)]  # a weak model
    t = metrics.validation_threshold(scores, labels, "fpr:0.01")
    assert t.rule == "fpr:0.01" and t == pytest.approx(np.quantile(scores[:1000], 0.99))
    assert np.mean(scores[:1000] >= t) == pytest.approx(0.01, abs=0.002)
    f1 = metrics.validation_threshold(scores, labels)
    assert f1.rule == "f1" and np.mean(scores >= f1) > 2 * labels.mean()  # F1: flags many normals
    assert metrics.evaluate(scores, labels, t)["threshold_target_fpr"] == 0.01
    assert "threshold_target_fpr" not in metrics.evaluate(scores, labels, f1)
    # without validation anomalies, "f1" cannot be computed: 1 % of normals above, as before
    normal_only = metrics.validation_threshold(scores[:1000], labels[:1000])
    assert normal_only.rule == "fpr:0.01" and normal_only == t


def test_figure_titles_name_the_run_and_its_test_metrics():
    from anomaly_toolbox.run import figures

    title = figures.title({"model": "ganomaly", "dataset": "mnist", "anomalous_class": 4})
    head = figures.heading(title, np.array([0.1, 0.9, 0.2, 0.8]), np.array([0, 1, 0, 1]))
    assert head == "ganomaly, mnist, anomalous class 4: test AUPRC 1.000, AUROC 1.000"
    assert figures.title({"model": "egbad", "dataset": "folder:x", "anomalous_class": None}) == \
        "egbad, folder:x"
