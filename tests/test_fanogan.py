"""f-AnoGAN: the per-image gradient penalty, the frozen stage 2, per-image scores, and a tiny
two-stage run end to end, interrupted after its GAN stage and resumed."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import DATA_DIR, assert_close, score_in_fresh_process, tiny_model

from anomaly_toolbox.models.fanogan import gradient_penalty

TWO_STAGES = {"batch_size": 32, "model": {"latent_dim": 8, "filters": [4, 8, 16],
                                          "gan_epochs": 1, "encoder_epochs": 1}}


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    """D(x) = <w, x> has input gradient w everywhere: every interpolate's penalty is (‖w‖ - 1)²."""
    w = tf.random.stateless_normal([1, 32, 32, 1], seed=[1, 2]) * 0.1
    x_hat = tf.random.stateless_uniform([5, 32, 32, 1], seed=[3, 4], minval=-1, maxval=1)
    penalty = gradient_penalty(lambda v: tf.reduce_sum(v * w, axis=[1, 2, 3])[:, None], x_hat)
    expected = (np.linalg.norm(w.numpy()) - 1.0) ** 2
    assert penalty.shape == (5,)
    np.testing.assert_allclose(10.0 * penalty.numpy(), 10.0 * expected, rtol=1e-5)


def test_gradient_penalty_is_each_images_own():
    """D(x) = ½‖x‖² has gradient x: image i's penalty is (‖x_i‖ - 1)², whatever else is in the
    batch; and the real critic's penalty does not depend on the batch either (no batch norm)."""
    x_hat = tf.random.stateless_uniform([4, 32, 32, 1], seed=[5, 6], minval=-0.1, maxval=0.1)
    penalty = gradient_penalty(lambda v: 0.5 * tf.reduce_sum(tf.square(v), axis=[1, 2, 3]), x_hat)
    expected = (np.linalg.norm(x_hat.numpy().reshape(4, -1), axis=1) - 1.0) ** 2
    np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-5)
    model = tiny_model("fanogan")
    assert_close(gradient_penalty(model.critic, x_hat)[:2], gradient_penalty(model.critic, x_hat[:2]))


def _weights(*nets):
    return [v.numpy().copy() for net in nets for v in net.weights]


def _fit(model, x, epoch):
    """One epoch of fit as the run calls it (the run's epoch index, the model's callbacks)."""
    model.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), initial_epoch=epoch,
              epochs=epoch + 1, verbose=0, shuffle=False, callbacks=model.fit_callbacks())


def test_gan_stage_updates_the_generator_every_n_critic_steps_and_leaves_the_encoder(batch):
    model = tiny_model("fanogan", gan_epochs=2)
    encoder = _weights(model.e)
    _fit(model, batch, epoch=1)  # 4 steps: 4 critic updates, 0 generator updates
    _fit(model, batch, epoch=1)  # steps 5-8: the 5th updates G
    assert int(model.d_optimizer.iterations.numpy()) == 8
    assert int(model.g_optimizer.iterations.numpy()) == 1
    assert int(model.e_optimizer.iterations.numpy()) == 0
    for a, b in zip(encoder, _weights(model.e)):
        np.testing.assert_array_equal(a, b)


def test_encoder_stage_leaves_generator_and_critic_bit_identical(batch):
    model = tiny_model("fanogan", gan_epochs=1)
    _fit(model, batch, epoch=0)
    frozen, encoder = _weights(model.g, model.d_features, model.d_logit), _weights(model.e)
    steps = (int(model.g_optimizer.iterations.numpy()), int(model.d_optimizer.iterations.numpy()))
    _fit(model, batch, epoch=1)  # the encoder stage: gan_epochs = 1
    for a, b in zip(frozen, _weights(model.g, model.d_features, model.d_logit)):
        np.testing.assert_array_equal(a, b)  # batch norm moving statistics included
    assert any(not np.array_equal(a, b) for a, b in zip(encoder, _weights(model.e)))
    assert steps == (int(model.g_optimizer.iterations.numpy()),
                     int(model.d_optimizer.iterations.numpy()))
    assert int(model.e_optimizer.iterations.numpy()) == 4


def test_steps_outside_fit_follow_the_schedule_or_the_kind_their_caller_sets(batch):
    """Eager steps keep the n_critic schedule; a traced step needs its kind chosen first."""
    model = tiny_model("fanogan")
    for _ in range(5):
        losses = model.train_step(batch[:16])
    assert {"d_loss", "g_loss", "gp", "wasserstein"} == set(losses)
    steps = model.d_optimizer.iterations, model.g_optimizer.iterations
    assert [int(v.numpy()) for v in steps] == [5, 1]  # the 5th step also updates G
    with pytest.raises(RuntimeError, match="set step_kind"):
        tf.function(model.train_step)(batch[:16])
    model.step_kind = "critic+generator"
    tf.function(model.train_step)(batch[:16])
    assert [int(v.numpy()) for v in steps] == [6, 2]


def test_score_is_per_image_and_finite(batch):
    keras.utils.set_random_seed(0)
    model = tiny_model("fanogan", gan_epochs=1)
    _fit(model, batch, epoch=0)
    _fit(model, batch, epoch=1)
    fn = tf.function(model.score, input_signature=[tf.TensorSpec([None, 32, 32, None])])
    together = fn(batch).numpy()
    alone = np.concatenate([fn(batch[i:i + 1]).numpy() for i in range(6)])
    assert together.shape == (64,) and np.all(np.isfinite(together)) and np.std(together) > 0
    assert_close(alone, together[:6])
    assert_close(fn(tf.reverse(batch, [0])).numpy()[::-1], together)
    assert tuple(model.reconstruct(batch[:3]).shape) == (3, 32, 32, 1)


def test_budget_is_the_sum_of_the_stages(tmp_path):
    from anomaly_toolbox import config
    from anomaly_toolbox import models as registry
    from anomaly_toolbox.errors import UsageError

    cls = registry.get("fanogan")
    path = tmp_path / "c.json"
    path.write_text(json.dumps(TWO_STAGES))
    assert config.resolve(cls, str(path))["epochs"] == 2
    with pytest.raises(UsageError, match=r"invalid epochs: 3 \(expected gan_epochs \+ "
                                         r"encoder_epochs = 2 for fanogan\)"):
        config.resolve(cls, str(path), epochs=3)
    path.write_text(json.dumps({**TWO_STAGES, "epochs": 5}))
    with pytest.raises(UsageError, match="invalid epochs: 5"):
        config.resolve(cls, str(path))
    path.write_text(json.dumps({"model": {**TWO_STAGES["model"], "gan_epochs": 10**9}}))
    with pytest.raises(UsageError, match=r"invalid gan_epochs \+ encoder_epochs: 1000000001 "
                                         r"\(expected at most 10000 epochs"):
        config.resolve(cls, str(path))  # the epochs cap held only for the budget given itself


RUN = dict(model="fanogan", dataset="mnist", anomalous_class=4, limit=160,
           data_dir=DATA_DIR, verbose=0)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "fanogan.json"
    path.write_text(json.dumps(TWO_STAGES))
    return str(path)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, config_file):
    from anomaly_toolbox.run import training

    out = tmp_path_factory.mktemp("straight") / "run"
    return out, training.fit(output_dir=str(out), config=config_file, **RUN)


def test_two_stage_run_selects_an_encoder_epoch_and_exports_its_scores(straight, tmp_path):
    from anomaly_toolbox.data import load_splits

    out, results = straight
    assert results["config"]["epochs"] == 2 and results["selected_epoch"] == 2
    assert json.loads((out / "results.json").read_text())["selected_epoch"] == 2
    history = results["history"]
    assert {"d_loss", "g_loss", "gp"} <= set(history[0]) and "izi_f" in history[1]
    assert (out / "test_extremes.png").stat().st_size > 0  # with G(E(x)) and |x - G(E(x))|
    splits = load_splits("mnist", 4, data_dir=DATA_DIR, limit=160)
    stored = np.load(out / "scores.npz")["test_scores"]
    assert_close(score_in_fresh_process(out / "saved_model", splits.x_test, tmp_path), stored)


def test_a_run_stopped_after_the_gan_stage_resumes_into_the_encoder_stage(
        straight, tmp_path, config_file, monkeypatch, capsys):
    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.rundir import EventWriter

    real = EventWriter.write

    def killed_after_epoch_1(writer, step, **events):  # the scalars, after epoch 1's commit
        real(writer, step, **events)
        if step == 1:
            raise KeyboardInterrupt("killed after the GAN stage")

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(EventWriter, "write", killed_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            training.fit(output_dir=str(out), config=config_file, **RUN)
    assert not (out / "results.json").exists()
    resumed = training.fit(output_dir=str(out), config=config_file, **RUN)
    assert "Resuming" in capsys.readouterr().out
    _, expected = straight
    assert resumed["selected_epoch"] == 2 and [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["validation"] == expected["validation"] and resumed["test"] == expected["test"]
