"""A logged loss is its epoch's mean: what fit's history holds at the epoch's end (history.json,
TensorBoard) is the mean of the epoch's batch losses, each batch counted by its images; fit's
per-batch logs are the running mean, so a NaN batch still stops training at that batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model

from anomaly_toolbox.run.callbacks import EpochDiverged, StopOnNonFinite

SMALL = {"egbad": {"d_z_units": 16, "d_units": 32}, "fanogan": {"gan_epochs": 1}}
BATCH = 16


class RawLosses(keras.callbacks.Callback):
    """Each step's own batch losses and batch size, as the model hands them to `logged`
    (copied into variables inside the compiled step), beside fit's per-batch logs."""

    def __init__(self, model):
        super().__init__()
        self.size = tf.Variable(0)
        self.values = {name: tf.Variable(0.0) for name in model.LOGGED}
        self.steps, self.logs = [], []
        logged = model.logged

        def recording(losses, x):
            self.size.assign(tf.shape(x)[0])
            for name, value in losses.items():
                self.values[name].assign(value)
            return logged(losses, x)
        model.logged = recording

    def on_train_batch_end(self, batch, logs=None):
        size = int(self.size.numpy())
        self.steps.append((size, {k: float(v.numpy()) for k, v in self.values.items()}))
        self.logs.append({k: float(v) for k, v in logs.items()})


def weighted_mean(steps, name):
    sizes = np.array([size for size, _ in steps], np.float64)
    return float(np.sum(sizes * [losses[name] for _, losses in steps]) / np.sum(sizes))


def fit_epoch(model, x, epoch, callback):
    callback.steps, callback.logs = [], []
    history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(BATCH), initial_epoch=epoch,
                        epochs=epoch + 1, verbose=0, shuffle=False,
                        callbacks=[callback, *getattr(model, "fit_callbacks", list)()])
    return {k: v[-1] for k, v in history.history.items()}


@pytest.mark.parametrize("name", ["ganomaly", "egbad", "anogan", "autoencoder", "fanogan"])
def test_the_epoch_loss_is_the_mean_over_its_batches_images(name, batch):
    model = tiny_model(name, **SMALL.get(name, {}))
    raw = RawLosses(model)
    x = batch[:40]  # batches of 16, 16 and 8 images: the last one counts half
    for epoch in (0, 1):  # f-AnoGAN: its GAN stage, then its encoder stage
        logged = fit_epoch(model, x, epoch, raw)
        assert [size for size, _ in raw.steps] == [16, 16, 8]
        assert logged and set(logged) == set(raw.logs[-1])
        for key, value in logged.items():
            assert value == pytest.approx(weighted_mean(raw.steps, key), rel=1e-6), key
            for k, logs in enumerate(raw.logs):  # the per-batch logs: the running mean
                assert logs[key] == pytest.approx(weighted_mean(raw.steps[:k + 1], key),
                                                  rel=1e-6), (key, k)
        assert any(value != pytest.approx(raw.steps[-1][1][key], rel=1e-4)
                   for key, value in logged.items())  # not the last batch's value
    if name == "fanogan":  # each stage logs only its own losses
        assert set(logged) == {"izi_f", "residual", "feature"}


def test_a_nan_batch_stops_fit_at_that_batch(batch):
    """The mean that takes in a NaN batch is NaN (every model logs through the same means)."""
    model = tiny_model("autoencoder")
    x = np.array(batch[:48])
    x[BATCH + 3] = np.nan  # in the second batch
    stop = StopOnNonFinite()
    with pytest.raises(EpochDiverged, match="epoch 1, step 2"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(BATCH), epochs=1, verbose=0,
                  shuffle=False, callbacks=[stop])
    assert stop.bad_step == 2
    assert int(model.optimizer.iterations.numpy()) == 2  # the third batch never ran
