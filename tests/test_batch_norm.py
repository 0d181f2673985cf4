"""blocks.BatchNormalization (TensorFlow's fused kernel) computes what keras' layer computes:
outputs, gradients and moving statistics, training and inference, in float32 and bfloat16."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from anomaly_toolbox.models import blocks, precision

# float32: rounding; bfloat16: its 8-bit mantissa (one unit in the last place is 2^-8)
RTOL = {"float32": 1e-5, "mixed_bfloat16": 8e-3}


def _pair(shape, rng):
    keras_bn, fused = layers.BatchNormalization(), blocks.BatchNormalization()
    keras_bn.build(shape)
    fused.build(shape)
    keras_bn.gamma.assign(rng.uniform(0.5, 1.5, shape[-1]).astype("float32"))
    keras_bn.beta.assign(rng.normal(size=shape[-1]).astype("float32"))
    fused.set_weights(keras_bn.get_weights())
    return keras_bn, fused


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(32, 8, 8, 16), (32, 24)])
def test_fused_batch_norm_matches_keras(policy, shape):
    rng = np.random.RandomState(0)
    with precision.policy(policy):
        layer_pair = _pair(shape, rng)
    for _ in range(3):  # three training steps move the moving statistics
        x = tf.constant(rng.normal(1.0, 3.0, shape).astype("float32"))
        results = []
        for layer in layer_pair:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.cast(layer(x, training=True), "float32")
                loss = tf.reduce_sum(y ** 3)
            results.append([y, *tape.gradient(loss, [x, layer.gamma, layer.beta])])
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=RTOL[policy], atol=RTOL[policy] * np.abs(a).max())
    for a, b in zip(*(layer.get_weights() for layer in layer_pair)):  # gamma, beta, moving
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)      # mean and variance
    outputs = [tf.cast(layer(x, training=False), "float32") for layer in layer_pair]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=RTOL[policy],
                               atol=RTOL[policy] * np.abs(outputs[0]).max())
    assert layer_pair[1](x).dtype == layer_pair[0](x).dtype  # bfloat16 under the mixed policy


def test_the_paths_it_leaves_to_keras_still_run():
    """Several replicas (synchronised statistics) and masks keep keras' own computation."""
    shape = (8, 4, 4, 6)
    rng = np.random.RandomState(1)
    keras_bn, fused = _pair(shape, rng)
    synced = blocks.BatchNormalization(synchronized=True)
    synced.build(shape)
    synced.set_weights(keras_bn.get_weights())
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    np.testing.assert_allclose(synced(x, training=True), keras_bn(x, training=True), rtol=1e-5,
                               atol=1e-6)
