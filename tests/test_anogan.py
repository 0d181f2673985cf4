"""AnoGAN: training, the batched latent search, batch independence, SavedModel export."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, assert_close, score_in_fresh_process, tiny_model


def compiled_score(model):
    """As training.score_images and export call it: a tf.function with unknown batch/channels."""
    return tf.function(model.score, input_signature=[tf.TensorSpec([None, 32, 32, None])])


def all_weights(model):
    """Every G and D weight, BatchNorm moving statistics included."""
    return [v.numpy().copy() for net in (model.g, model.d_features, model.d_logit)
            for v in net.weights]


def settle_batchnorm(model, x):
    """Sets every BatchNorm's moving statistics to those of one training-mode pass, as a long
    run would (momentum 0.99 needs ~500 steps): otherwise, in inference mode, a barely trained
    G(z) is nearly constant in z and there is nothing for the search to find."""
    layers = [layer for net in (model.g, model.d_features) for layer in net.layers
              if hasattr(layer, "moving_variance")]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model.g(tf.random.stateless_normal([64, model.latent_dim], seed=[3, 4]), training=True)
    model.d_features(x, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


@pytest.fixture(scope="module")
def trained(batch):
    """A tiny AnoGAN after a few real training steps."""
    keras.utils.set_random_seed(0)
    model = tiny_model("anogan", search_steps=30)
    step = tf.function(model.train_step)
    for i in range(20):
        step(batch[(i % 2) * 32:(i % 2 + 1) * 32])
    settle_batchnorm(model, batch)
    return model


def test_search_reduces_the_loss(trained, batch):
    x = batch[:16]
    start = trained.search_losses(x, trained.initial_latents(x)).numpy()
    scores = compiled_score(trained)(x).numpy()
    assert scores.shape == (16,) and np.all(np.isfinite(scores))
    assert np.all(scores < start), (scores, start)
    assert scores.mean() < 0.99 * start.mean(), (scores.mean(), start.mean())


def test_scoring_leaves_weights_alone(trained, batch):
    before = all_weights(trained)
    compiled_score(trained)(batch[:8])
    trained.reconstruct(batch[:2])
    for a, b in zip(before, all_weights(trained)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("init", ["zeros", "sample", "best_of_k"])
def test_scores_do_not_depend_on_the_batch(batch, init):
    model = tiny_model("anogan", search_steps=10, search_init=init, search_k=4)
    model.train_step(batch[:16])
    fn = compiled_score(model)
    x = batch[:12]
    together = fn(x).numpy()
    alone = np.concatenate([fn(x[i:i + 1]).numpy() for i in range(6)])
    reordered = fn(tf.reverse(x, [0])).numpy()[::-1]
    assert_close(alone, together[:6])
    assert_close(reordered, together)
    # repeatable call after call (no RNG state advances), which training relies on to reuse the
    # best epoch's validation scores instead of searching again
    np.testing.assert_array_equal(fn(x).numpy(), together)


def test_best_of_k_starts_from_the_best_candidate(trained, batch):
    model = tiny_model("anogan", search_init="best_of_k", search_k=5)
    model.set_weights(trained.get_weights())
    x = batch[:4]
    z0 = model.initial_latents(x)
    candidates = tf.random.stateless_normal([5, model.latent_dim], seed=[model.search_seed, 0])
    per_candidate = np.stack([model.search_losses(x, tf.tile(c[None], [4, 1])).numpy()
                              for c in candidates], axis=1)
    assert_close(z0, tf.gather(candidates, per_candidate.argmin(axis=1)))


def test_every_variable_gets_a_gradient(batch):
    model = tiny_model("anogan")
    with tf.GradientTape(persistent=True) as tape:
        losses = model.losses_on(batch[:16], training=True)
    for loss, variables in ((losses["g_loss"], model.generator_variables),
                            (losses["d_loss"], model.discriminator_variables)):
        assert variables
        for var, grad in zip(variables, tape.gradient(loss, variables)):
            assert grad is not None, var.path
            assert np.any(grad.numpy() != 0), var.path


def test_train_step_updates_generator_and_discriminator(batch):
    model = tiny_model("anogan")
    g_before = [v.numpy().copy() for v in model.generator_variables]
    d_before = [v.numpy().copy() for v in model.discriminator_variables]
    losses = model.train_step(batch[:16])
    assert {"g_loss", "d_loss"} <= set(losses)
    assert all(np.isfinite(float(v)) for v in losses.values())
    assert any(np.any(a != v.numpy()) for a, v in zip(g_before, model.generator_variables))
    assert any(np.any(a != v.numpy()) for a, v in zip(d_before, model.discriminator_variables))
    assert int(model.g_optimizer.iterations.numpy()) == 1


def test_training_noise_follows_the_checkpointed_step(batch, tmp_path):
    model = tiny_model("anogan")
    x = batch[:4]
    model.train_step(batch[:8])
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    resumed = tiny_model("anogan")
    resumed.noise_salt = model.noise_salt  # same train seed -> same salt (drawn at build)
    tf.train.Checkpoint(model=resumed).restore(path).assert_existing_objects_matched()
    assert_close(resumed.sample_noise(4), model.sample_noise(4))
    assert_close(resumed.losses_on(x, training=False)["g_loss"],
                 model.losses_on(x, training=False)["g_loss"])
    first = model.sample_noise(4).numpy()
    model.g_optimizer.iterations.assign_add(1)  # the next step draws other noise
    assert not np.allclose(first, model.sample_noise(4).numpy())


def test_fit_runs_as_training_does(batch):
    model = tiny_model("anogan")
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch[:32]).batch(16), epochs=1,
                        verbose=0, shuffle=False)
    assert np.isfinite(history.history["g_loss"][-1]) and np.isfinite(history.history["d_loss"][-1])
    assert int(model.g_optimizer.iterations.numpy()) == 2


def test_reconstruct_shape(trained, batch):
    assert tuple(trained.reconstruct(batch[:3]).shape) == (3, 32, 32, 1)


def test_invalid_config_is_a_usage_error(tmp_path):
    import json

    from anomaly_toolbox import config
    from anomaly_toolbox import models as registry
    from anomaly_toolbox.errors import UsageError

    for bad in ({"search_init": "random"}, {"search_steps": -1}, {"lambda_": 1.5},
                {"filters": [4, 8]}, {"search_k": 0}):
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"model": bad}))
        with pytest.raises(UsageError, match=next(iter(bad))):
            config.resolve(registry.get("anogan"), str(path))


def test_experiment_files_resolve():
    from anomaly_toolbox import config
    from anomaly_toolbox import models as registry

    paths = sorted(glob.glob(os.path.join(REPO, "experiments", "anogan_*.json")))
    assert len(paths) == 4
    for path in paths:
        cfg = config.resolve(registry.get("anogan"), path)
        assert cfg["profile"] in ("cpu", "paper")


def test_saved_model_scores_like_the_model(trained, images, tmp_path):
    from anomaly_toolbox.run import export
    from anomaly_toolbox.data.preprocessing import to_model_input

    model = tiny_model("anogan", search_steps=5, search_init="best_of_k", search_k=3)
    model.set_weights(trained.get_weights())
    raw = images[0][:6]
    expected = compiled_score(model)(to_model_input(raw)).numpy()
    export.save(model, tmp_path / "sm", channels=1, threshold=0.5, metadata={"model": "anogan"})
    assert_close(score_in_fresh_process(tmp_path / "sm", raw, tmp_path), expected)
