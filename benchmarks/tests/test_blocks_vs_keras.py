"""The layer comparison starts both models from equal weights and times both steps."""

import pytest

from benchmarks.tests.conftest import DATA_DIR

# Dense: the same products in another order. Batch norm: rounding at the level of the gradients'
# least bits, but Adam's first step moves every weight by about ±lr (2e-4), so a gradient near
# zero whose sign rounds the other way ends 2 lr apart (tests/test_batch_norm.py checks the layer)
BOUND = {"Dense": 1e-6, "BatchNormalization": 2 * 2e-4 + 1e-6}


@pytest.mark.parametrize("layer, model_name", [("Dense", "egbad"),
                                               ("BatchNormalization", "ganomaly")])
def test_both_steps_run_from_equal_weights_and_stay_within_rounding(layer, model_name):
    from benchmarks.blocks_vs_keras import compare

    r = compare("float32", "cpu", rounds=1, steps=1, data_dir=DATA_DIR, layer=layer,
                model_name=model_name)
    assert r["max_weight_diff"] < BOUND[layer]
    assert set(r["img_s"]) == {"keras", "blocks"} and min(r["img_s"].values()) > 0
