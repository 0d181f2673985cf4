"""The exported SavedModel scores and maps as the Keras model does: through the folded inference
copies (export's default, models/folded.py) and through the Keras networks (fold=False), each
within a stated tolerance. BatchNorm statistics are made far from the identity first, so a
wrong fold cannot pass."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from anomaly_toolbox import models
from anomaly_toolbox.models import folded
from anomaly_toolbox.models.precision import policy
from anomaly_toolbox.run import export
from tests.conftest import TINY

# Largest relative score difference allowed, per compute precision: float32 rounding, and
# for bfloat16 (exported unfolded, so both paths trace the Keras networks) bfloat16's.
RTOL = {"float32": 1e-4, "mixed_bfloat16": 2e-2}
SMALL = {"anogan": {"search_steps": 3}}  # a short latent search keeps the test fast


def _model(name, precision):
    cls = models.get(name)
    with policy(precision):
        model = cls(**{**cls.DEFAULTS, **TINY, **SMALL.get(name, {})}, channels=1)
    rng = np.random.default_rng(0)
    for network in folded.serving(model).networks:
        for layer in getattr(model, network).layers:
            if isinstance(layer, layers.BatchNormalization):
                n = layer.moving_mean.shape[0]
                layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
                layer.moving_variance.assign(rng.uniform(0.2, 3.0, n).astype("float32"))
                layer.gamma.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
                layer.beta.assign(rng.normal(0, 0.5, n).astype("float32"))
    return model


def _relative(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(b) + 1e-12)))


@pytest.mark.parametrize("name", models.names())
def test_folded_networks_compute_the_keras_networks(name, batch):
    model = _model(name, "float32")
    serving = folded.serving(model)
    assert serving.networks, "no Sequential network was folded"
    for network, copy in serving.networks.items():
        keras_net = getattr(model, network)
        x = tf.random.stateless_normal([16, *keras_net.inputs[0].shape[1:]], [1, 2])
        if network in ("g_e", "e", "encoder", "d_features"):
            x = batch[:16]  # real images where the network reads images
        want = keras_net(x, training=False).numpy()
        np.testing.assert_allclose(copy(x).numpy(), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_bfloat16_models_are_not_folded():
    assert folded.foldable(_model("ganomaly", "float32"))
    assert not folded.foldable(_model("ganomaly", "mixed_bfloat16"))


@pytest.mark.parametrize("name,precision", [(n, "float32") for n in models.names()]
                         + [("ganomaly", "mixed_bfloat16")])
def test_exported_scores_equal_the_keras_models_both_paths(name, precision, images, batch,
                                                           tmp_path):
    model = _model(name, precision)
    want = model.score(batch).numpy()
    with policy(precision):
        plain = _model(name, precision)
    plain.set_weights(model.get_weights())
    for layer in (l for n in folded.serving(plain).networks for l in getattr(plain, n).layers):
        if isinstance(layer, layers.BatchNormalization):  # the identity statistics again
            for v, value in ((layer.moving_mean, 0.0), (layer.moving_variance, 1.0),
                             (layer.gamma, 1.0), (layer.beta, 0.0)):
                v.assign(tf.fill(v.shape, value))
    if name != "anogan":  # AnoGAN's score is its search's, which may not use a BatchNorm
        assert _relative(plain.score(batch).numpy(), want) > 10 * RTOL[precision], \
            "the statistics do not change the scores: the test would not see a wrong fold"
    for fold in (True, False):
        path = export.save(model, str(tmp_path / f"sm_{fold}"), channels=1, threshold=0.0,
                           metadata={"model": name}, fold=fold)
        loaded = tf.saved_model.load(path)
        got = loaded.score(images[0]).numpy()
        assert _relative(got, want) <= RTOL[precision], (fold, _relative(got, want))
        # an image's score does not depend on the batch it came in (to float32 rounding)
        one = np.concatenate([loaded.score(images[0][i:i + 1]).numpy() for i in range(4)])
        np.testing.assert_allclose(one, got[:4], rtol=1e-5)
        if hasattr(model, "reconstruct"):
            want_map = export.reconstruction_map(model, batch).numpy()[:, 2:30, 2:30]
            np.testing.assert_allclose(loaded.anomaly_map(images[0]).numpy(), want_map,
                                       atol=RTOL[precision] * 2)
