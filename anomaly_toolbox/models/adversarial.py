"""What the adversarial models really share, and nothing else.

As in keras-io's DCGAN example, one keras.Model owns both sides and `compile` takes the two
optimizers (default: Adam with the config's learning rate and beta_1, as every paper here uses).
`train_step` is one tape over the model's `losses_on(x, training=True)`, then one update per
side, each with the gradient of its own loss w.r.t. its own variables: D's loss never updates
G and vice versa, so one forward pass serves both. The logged losses are epoch means
(epoch_means.py).
"""

import keras
import tensorflow as tf

from anomaly_toolbox.models import replicas
from anomaly_toolbox.models.epoch_means import EpochMeansModel


def bce_with_logits(logits, label):
    """Per-image sigmoid cross-entropy of (B, 1) logits against the constant label 0 or 1: (B,)."""
    labels = tf.fill(tf.shape(logits), tf.constant(label, logits.dtype))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits), axis=-1)


def stateless_noise(shape, *seed):
    """N(0, 1) noise that is a pure function of two integers: keyed on an optimizer's checkpointed
    step counter and a per-run salt, a resumed run draws exactly the noise of an uninterrupted one."""
    return replicas.stateless_normal(shape, tf.stack([tf.cast(s, tf.int64) for s in seed]))


class AdversarialModel(EpochMeansModel):
    """Subclasses define generator_variables and losses_on(x, training) returning a dict with
    the two losses named by G_LOSS and D_LOSS plus any terms to log, all named in LOGGED.
    discriminator_variables defaults to blocks.discriminator_pair's d_features and d_logit."""

    G_LOSS, D_LOSS = "g_loss", "d_loss"

    def __init__(self, learning_rate, beta_1, **kwargs):
        super().__init__(**kwargs)
        self.learning_rate, self.beta_1 = learning_rate, beta_1

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(self.learning_rate,
                                                                beta_1=self.beta_1)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(self.learning_rate,
                                                                beta_1=self.beta_1)
        self.loss_scaled = self.dtype_policy.name == "mixed_float16"
        if self.loss_scaled:
            self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer)
            self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator_variables)
        self.built = True  # every network was built with its input shape; fit needs no sample

    @property
    def discriminator_variables(self):
        return self.d_features.trainable_variables + self.d_logit.trainable_variables

    def train_step(self, x):
        share = replicas.loss_share(x)
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses_on(x, training=True)
            scaled = {k: losses[k] if isinstance(share, float) else losses[k] * share
                      for k in (self.G_LOSS, self.D_LOSS)}
            if self.loss_scaled:  # mixed_float16: gradients would underflow unscaled
                scaled = {self.G_LOSS: self.g_optimizer.scale_loss(scaled[self.G_LOSS]),
                          self.D_LOSS: self.d_optimizer.scale_loss(scaled[self.D_LOSS])}
        for key, optimizer, variables in ((self.G_LOSS, self.g_optimizer, self.generator_variables),
                                          (self.D_LOSS, self.d_optimizer,
                                           self.discriminator_variables)):
            optimizer.apply_gradients(zip(tape.gradient(scaled[key], variables), variables))
        return self.logged(losses, x)
