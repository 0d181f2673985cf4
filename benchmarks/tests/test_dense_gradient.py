"""The Dense comparison starts both EGBADs from equal weights and times both steps."""

from benchmarks.tests.conftest import DATA_DIR


def test_both_steps_run_from_equal_weights_and_stay_within_rounding():
    from benchmarks.dense_gradient import compare

    r = compare("float32", "cpu", rounds=1, steps=1, data_dir=DATA_DIR)
    assert r["max_weight_diff"] < 1e-6  # the same products in another order
    assert set(r["img_s"]) == {"keras", "blocks"} and min(r["img_s"].values()) > 0
