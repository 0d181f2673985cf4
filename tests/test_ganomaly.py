import numpy as np
import tensorflow as tf
from conftest import assert_close, tiny_model


def test_shapes_and_separate_second_encoder(batch):
    model = tiny_model("ganomaly")
    z = model.g_e(batch)
    assert z.shape == (64, 8) and model.g_d(z).shape == (64, 32, 32, 1)
    assert model.d_features(batch).shape == (64, 4, 4, 16)
    assert model.score(batch).shape == (64,)
    own = {id(v) for v in model.e.trainable_variables}
    assert own and not own & {id(v) for v in model.g_e.trainable_variables}


def test_every_variable_gets_a_gradient(batch):
    model = tiny_model("ganomaly")
    with tf.GradientTape(persistent=True) as tape:
        losses = model.losses_on(batch, training=True)
    for loss, variables in (("g_loss", model.generator_variables),
                            ("d_loss", model.discriminator_variables)):
        for v, g in zip(variables, tape.gradient(losses[loss], variables)):
            assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, (loss, v.path)


def test_one_step_changes_every_network(batch):
    model = tiny_model("ganomaly")
    nets = (model.g_e, model.g_d, model.e, model.d_features, model.d_logit)
    before = [[v.numpy().copy() for v in n.trainable_variables] for n in nets]
    losses = tf.function(model.train_step)(batch)
    assert set(losses) >= {"g_loss", "d_loss", "adv", "con", "enc"}
    for net, old in zip(nets, before):
        assert any(not np.array_equal(o, v.numpy()) for o, v in zip(old, net.trainable_variables)), net.name


def test_score_is_independent_of_the_batch(batch):
    model = tiny_model("ganomaly")
    model.fit(batch, batch_size=32, epochs=1, verbose=0)  # move BatchNorm statistics off init
    together = model.score(batch).numpy()
    alone = np.concatenate([model.score(batch[i:i + 1]).numpy() for i in range(8)])
    assert_close(together[:8], alone)
    assert_close(model.score(batch[8:16]), together[8:16])
    assert np.all(together >= 0) and np.std(together) > 0
