"""Logged losses as epoch means, the Keras way (keras-io's DCGAN example).

A model keeps one `keras.metrics.Mean` per loss it logs and lists them in `metrics`, so `fit`
resets them at every epoch start and reads them at its end: history.json and TensorBoard get the
epoch's mean, and fit's per-batch logs (the NaN check, the progress bar) the running mean, which
turns NaN or inf at the batch that does. Each batch counts by its number of images, as Keras' own
loss tracker does: the epoch value is the mean over the epoch's images, and under tf.distribute
each replica adds its own images' share (the metric variables are summed over replicas when
read), which makes the global batch's mean whatever the split.
"""

import keras
import tensorflow as tf

from anomaly_toolbox.models import replicas


class EpochMeansModel(keras.Model):
    """A keras.Model whose train_step logs the losses named in LOGGED through `logged`."""

    LOGGED = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Not in tf.train.Checkpoint's graph (Keras metrics are not trackable children), so
        # checkpoints with or without them restore alike.
        self.loss_means = {name: keras.metrics.Mean(name=name) for name in self.LOGGED}

    @property
    def metrics(self):
        """The means fit resets and reports: not Keras' own "loss" tracker, which no step
        here updates (it would log 0.0)."""
        return list(self.loss_means.values())

    def logged(self, losses, x):
        """Adds one batch's losses (scalars, batch means over x's images) to the epoch means
        and returns the running means, the step's logs."""
        expected = {m.name for m in self.metrics}
        if set(losses) != expected:
            raise ValueError(f"{type(self).__name__} logs {sorted(losses)}, but its metrics "
                             f"are {sorted(expected)}")
        images = tf.shape(x)[0]
        for name, value in losses.items():
            self.loss_means[name].update_state(value, sample_weight=images)
        return replicas.reported({name: self.loss_means[name].result() for name in losses})
