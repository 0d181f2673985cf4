"""EGBAD (BiGAN): shapes, gradient flow, one update, per-sample scores, score variants, export."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, score_in_fresh_process, tiny_model

from anomaly_toolbox.errors import UsageError

SMALL = {"d_z_units": 16, "d_units": 32}  # tiny D head; TINY sets latent_dim=8, filters=[4,8,16]


def egbad(**overrides):
    return tiny_model("egbad", **{**SMALL, **overrides})


@pytest.fixture(scope="module")
def model():
    return egbad()


def test_shapes(model, batch):
    x = batch[:5]
    z = model.e(x, training=False)
    assert z.shape == (5, 8)
    assert model.g(z, training=False).shape == (5, 32, 32, 1)
    logit, features = model.d([x, z], training=False)
    assert logit.shape == (5, 1) and features.shape == (5, 32)
    assert model.reconstruct(x).shape == (5, 32, 32, 1)
    assert model.score(x).shape == (5,)


def test_every_variable_gets_a_gradient(model, batch):
    with tf.GradientTape(persistent=True) as tape:
        losses = model.losses_on(batch[:16], training=True)
    grads = {v.path: g for v, g in zip(
        model.generator_variables, tape.gradient(losses["ge_loss"], model.generator_variables))}
    grads.update({v.path: g for v, g in zip(
        model.discriminator_variables,
        tape.gradient(losses["d_loss"], model.discriminator_variables))})
    assert len(grads) == len(model.e.trainable_variables) + len(model.g.trainable_variables) \
        + len(model.d.trainable_variables)
    dead = [name for name, g in grads.items() if g is None or not np.any(g.numpy())]
    assert not dead, dead


def test_train_step_updates_all_networks(batch):
    m = egbad()
    nets = {"e": m.e, "g": m.g, "d": m.d}
    before = {k: [v.numpy().copy() for v in n.trainable_variables] for k, n in nets.items()}
    losses = tf.function(m.train_step)(batch[:16])
    assert all(np.isfinite(float(v)) for v in losses.values())
    for k, n in nets.items():
        changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before[k], n.trainable_variables)]
        assert all(changed), (k, changed)
    assert int(m.d_optimizer.iterations.numpy()) == 1


def test_noise_is_keyed_on_the_step(model):
    a, b = model.sample_noise(4), model.sample_noise(4)
    assert_close(a, b)  # same step -> same noise (a restored run replays it)
    model.d_optimizer.iterations.assign_add(1)
    try:
        assert not np.allclose(a.numpy(), model.sample_noise(4).numpy())
    finally:
        model.d_optimizer.iterations.assign_add(-1)


def test_score_is_per_sample(model, batch):
    scores = model.score(batch[:8]).numpy()
    one_by_one = [model.score(batch[i:i + 1]).numpy()[0] for i in range(8)]
    assert_close(scores, one_by_one)


def test_score_variants(batch):
    feature = egbad(score_discriminator="feature")
    bce = egbad(score_discriminator="bce")
    bce.set_weights(feature.get_weights())
    s_f, s_b = feature.score(batch[:8]).numpy(), bce.score(batch[:8]).numpy()
    assert np.all(np.isfinite(s_f)) and np.all(np.isfinite(s_b))
    assert not np.allclose(s_f, s_b)
    # alpha = 1 leaves only the reconstruction term, identical for both variants.
    feature.alpha = bce.alpha = 1.0
    assert_close(feature.score(batch[:8]), bce.score(batch[:8]))


@pytest.mark.parametrize("key,value", [("score_discriminator", "l2"), ("alpha", 1.5),
                                       ("alpha", -0.1)])
def test_bad_config_raises(key, value, tmp_path):
    import json

    from anomaly_toolbox import config, models

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {key: value}}))
    with pytest.raises(UsageError, match=key):
        config.resolve(models.get("egbad"), str(path))


def test_saved_model_round_trip(images, tmp_path):
    from anomaly_toolbox.run import export
    from anomaly_toolbox.data.preprocessing import to_model_input

    model = egbad()
    model.losses_on(to_model_input(images[0][:16]), training=True)  # moves the BN statistics
    export.save(model, tmp_path / "sm", channels=1, threshold=0.5, metadata={"model": "egbad"})
    fresh = score_in_fresh_process(tmp_path / "sm", images[0], tmp_path)
    assert_close(fresh, model.score(to_model_input(images[0])))


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_blocks_dense_is_keras_dense_with_the_same_gradients(precision):
    """blocks.Dense only reorders the input gradient's products: outputs, and the gradients of
    input, kernel and bias, equal keras' Dense on the same weights (bfloat16 to its rounding)."""
    import keras

    from anomaly_toolbox.models import blocks
    from anomaly_toolbox.models.precision import policy

    x = tf.random.stateless_normal([16, 40], seed=[1, 2])
    with policy(precision):
        ours, theirs = blocks.Dense(24), keras.layers.Dense(24)
        ours.build(x.shape), theirs.build(x.shape)
    theirs.kernel.assign(tf.random.stateless_normal([40, 24], seed=[3, 4]))
    theirs.bias.assign(tf.random.stateless_normal([24], seed=[5, 6]))
    ours.set_weights(theirs.get_weights())
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(24, dtype=tf.float32))
        results.append([y, *tape.gradient(loss, [x, layer.kernel, layer.bias])])
    # bfloat16 keeps 8 bits: 2 units in the last place of a product summed another way
    atol, rtol = (1e-5, 1e-5) if precision == "float32" else (0.1, 2 ** -6)
    for a, b in zip(*results):
        np.testing.assert_allclose(np.float32(a), np.float32(b), atol=atol, rtol=rtol)
    assert ours.name.startswith("dense")  # checkpoints keep their variable names
