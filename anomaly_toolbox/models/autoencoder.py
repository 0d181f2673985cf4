"""Plain convolutional autoencoder: the baseline every GAN here has to beat.

GANomaly's encoder G_E and decoder G_D without the adversarial and latent terms, trained on
L1 reconstruction; the anomaly score is the mean absolute reconstruction error. Its step is
written out, not Keras' default one, for the same replica-exact loss as every model here
(models/replicas.py: Keras' default divides by the replica count instead, which differs when
a batch splits unevenly); it logs the epoch's mean L1 as "l1_loss" (epoch_means.py).
"""

import keras
import tensorflow as tf

from anomaly_toolbox.models import blocks, replicas
from anomaly_toolbox.models.epoch_means import EpochMeansModel
from anomaly_toolbox.models.hyperparameters import ADAM_BETA, POSITIVE, SIZE
from anomaly_toolbox.models.registry import register


@register("autoencoder")
class Autoencoder(EpochMeansModel):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "learning_rate": 2e-4,
                "beta_1": 0.5}
    RANGES = {"latent_dim": SIZE, "filters": SIZE, "learning_rate": POSITIVE,
              "beta_1": ADAM_BETA}
    LOGGED = ("l1_loss",)

    def __init__(self, latent_dim, filters, learning_rate, beta_1, channels=1, image_size=32,
                 **kwargs):
        super().__init__(**kwargs)
        self.learning_rate, self.beta_1 = learning_rate, beta_1
        self.image_size = image_size
        self.encoder = blocks.encoder(filters, latent_dim, channels, "encoder",
                                      image_size=image_size)
        self.decoder = blocks.decoder(filters, latent_dim, channels, "decoder",
                                      image_size=image_size)

    def compile(self, optimizer=None, **kwargs):
        """Adam with the config's learning rate and beta_1 unless an optimizer is passed."""
        optimizer = optimizer or keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1)
        if self.dtype_policy.name == "mixed_float16":  # gradients would underflow unscaled
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(self.trainable_variables)  # slots now: a checkpoint restores before step 1
        super().compile(optimizer=optimizer, **kwargs)
        self.built = True  # both networks were built with their input shapes

    def train_step(self, x):
        share = replicas.loss_share(x)
        with tf.GradientTape() as tape:
            x_hat = self.decoder(self.encoder(x, training=True), training=True)
            l1 = tf.reduce_mean(tf.abs(x - x_hat))
            loss = self.optimizer.scale_loss(  # scaled only under mixed_float16
                l1 if isinstance(share, float) else l1 * share)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self.logged({"l1_loss": l1}, x)

    def reconstruct(self, x):
        return self.decoder(self.encoder(x, training=False), training=False)

    def score(self, x):
        return tf.reduce_mean(tf.abs(x - self.reconstruct(x)), axis=[1, 2, 3])
