"""EGBAD: BiGAN-based anomaly detection (Zenati et al. 2018, arXiv 1802.06222).

A BiGAN learns an encoder E: x -> z together with the generator G: z -> x, so scoring needs no
per-image latent search (unlike AnoGAN). The discriminator D sees joint pairs: (x, E(x)) is
"real", (G(z), z) is "fake". The anomaly score is A(x) = alpha * L_G(x) + (1 - alpha) * L_D(x)
with L_G = mean |x - G(E(x))| and L_D either the feature-matching distance
mean |f_D(x, E(x)) - f_D(G(E(x)), E(x))| ("feature") or the cross-entropy of D on the real pair
(x, E(x)) w.r.t. label 1 ("bce"). See README_egbad.md for deviations from the paper and code.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.models import blocks
from anomaly_toolbox.registry import register

SCORE_DISCRIMINATORS = ("feature", "bce")


def discriminator(filters, latent_dim, z_units, units, channels, name):
    """(x, z) -> (logit (B, 1), feature layer f_D (B, units))."""
    x_in, z_in = keras.Input((32, 32, channels)), keras.Input((latent_dim,))
    hx = layers.Flatten()(blocks.conv_trunk(filters, channels, f"{name}_x")(x_in))
    hz = layers.LeakyReLU(0.2)(layers.Dense(z_units, kernel_initializer=blocks.dcgan_init())(z_in))
    h = layers.Concatenate()([hx, hz])
    features = layers.LeakyReLU(0.2)(layers.Dense(units, kernel_initializer=blocks.dcgan_init())(h))
    logit = layers.Dense(1, kernel_initializer=blocks.dcgan_init())(features)
    return keras.Model([x_in, z_in], [logit, features], name=name)


def _bce(labels_value, logits):
    """Per-sample sigmoid cross-entropy of (B, 1) logits against a constant label, shape (B,)."""
    labels = tf.fill(tf.shape(logits), tf.constant(labels_value, logits.dtype))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits), axis=-1)


@register("egbad")
class EGBAD(keras.Model):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "d_z_units": 512,
                "d_units": 1024, "encoder_leaky": True, "learning_rate": 2e-4, "beta_1": 0.5,
                "alpha": 0.9, "score_discriminator": "feature"}

    def __init__(self, latent_dim, filters, d_z_units, d_units, encoder_leaky, learning_rate,
                 beta_1, alpha, score_discriminator, channels=1, **kwargs):
        super().__init__(**kwargs)
        if score_discriminator not in SCORE_DISCRIMINATORS:
            raise UsageError("score_discriminator", score_discriminator,
                             f"one of {', '.join(SCORE_DISCRIMINATORS)}")
        if not 0.0 <= alpha <= 1.0:
            raise UsageError("alpha", alpha, "a number in [0, 1]")
        # Drawn from the global RNG that training seeds before building the model, so a
        # resumed run gets the same value; with the optimizer step it fixes each step's noise.
        self.noise_seed = int(np.random.randint(0, 2**31 - 1))
        self.latent_dim, self.alpha = latent_dim, alpha
        self.score_discriminator = score_discriminator
        self.learning_rate, self.beta_1 = learning_rate, beta_1
        self.e = blocks.encoder(filters, latent_dim, channels, "e", leaky=encoder_leaky)
        self.g = blocks.decoder(filters, latent_dim, channels, "g")
        self.d = discriminator(filters, latent_dim, d_z_units, d_units, channels, "d")

    @property
    def generator_variables(self):
        """G and E are trained jointly, by one optimizer, against D."""
        return self.g.trainable_variables + self.e.trainable_variables

    @property
    def discriminator_variables(self):
        return self.d.trainable_variables

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.ge_optimizer = blocks.built_adam(self.generator_variables, self.learning_rate,
                                              self.beta_1)
        self.d_optimizer = blocks.built_adam(self.discriminator_variables, self.learning_rate,
                                             self.beta_1)

    def sample_z(self, batch_size):
        """Stateless noise keyed on the step counter: a restored checkpoint replays it exactly."""
        seed = tf.stack([tf.constant(self.noise_seed, tf.int64),
                         tf.cast(self.d_optimizer.iterations, tf.int64)])
        return tf.random.stateless_normal([batch_size, self.latent_dim], seed=seed)

    def losses_on(self, x, training):
        z_real = self.e(x, training=training)
        z_fake = self.sample_z(tf.shape(x)[0])
        x_fake = self.g(z_fake, training=training)
        logit_real, _ = self.d([x, z_real], training=training)
        logit_fake, _ = self.d([x_fake, z_fake], training=training)
        # One forward pass serves both losses: each gradient is taken only w.r.t. its own
        # networks' variables, so D's loss never updates G/E and vice versa.
        d_loss = tf.reduce_mean(_bce(1.0, logit_real)) + tf.reduce_mean(_bce(0.0, logit_fake))
        e_loss = tf.reduce_mean(_bce(0.0, logit_real))
        g_loss = tf.reduce_mean(_bce(1.0, logit_fake))
        return {"ge_loss": g_loss + e_loss, "d_loss": d_loss, "g_loss": g_loss, "e_loss": e_loss}

    def train_step(self, x):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses_on(x, training=True)
        ge_vars, d_vars = self.generator_variables, self.discriminator_variables
        d_grads = tape.gradient(losses["d_loss"], d_vars)
        ge_grads = tape.gradient(losses["ge_loss"], ge_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.ge_optimizer.apply_gradients(zip(ge_grads, ge_vars))
        return losses

    def reconstruct(self, x):
        return self.g(self.e(x, training=False), training=False)

    def score(self, x):
        z = self.e(x, training=False)
        x_hat = self.g(z, training=False)
        l_g = tf.reduce_mean(tf.abs(x - x_hat), axis=[1, 2, 3])
        logit, features = self.d([x, z], training=False)
        if self.score_discriminator == "feature":
            _, features_hat = self.d([x_hat, z], training=False)
            l_d = tf.reduce_mean(tf.abs(features - features_hat), axis=-1)
        else:
            l_d = _bce(1.0, logit)
        return self.alpha * l_g + (1.0 - self.alpha) * l_d
