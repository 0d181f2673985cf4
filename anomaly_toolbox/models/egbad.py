"""EGBAD: BiGAN-based anomaly detection (Zenati et al. 2018, arXiv 1802.06222).

A BiGAN learns an encoder E: x -> z together with the generator G: z -> x, so scoring needs no
per-image latent search (unlike AnoGAN). The discriminator D sees joint pairs: (x, E(x)) is
"real", (G(z), z) is "fake". The anomaly score is A(x) = alpha * L_G(x) + (1 - alpha) * L_D(x)
with L_G = mean |x - G(E(x))| and L_D either the feature-matching distance
mean |f_D(x, E(x)) - f_D(G(E(x)), E(x))| ("feature") or the cross-entropy of D on the real pair
(x, E(x)) w.r.t. label 1 ("bce"). alpha = 0.9 is the paper's. See README_egbad.md for deviations.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from anomaly_toolbox.models import blocks
from anomaly_toolbox.models.adversarial import AdversarialModel, bce_with_logits, stateless_noise
from anomaly_toolbox.models.hyperparameters import ADAM_BETA, ANY, POSITIVE, SIZE, UNIT, one_of
from anomaly_toolbox.models.registry import register


def discriminator(filters, latent_dim, z_units, units, channels, name, image_size=32):
    """(x, z) -> (logit (B, 1), feature layer f_D (B, units))."""
    x_in, z_in = keras.Input((image_size, image_size, channels)), keras.Input((latent_dim,))
    trunk = blocks.conv_trunk(filters, channels, f"{name}_x", output=False, image_size=image_size)
    hx = layers.Flatten()(trunk(x_in))
    hz = layers.LeakyReLU(0.2)(blocks.Dense(z_units, kernel_initializer=blocks.dcgan_init())(z_in))
    h = layers.Concatenate()([hx, hz])
    features = layers.LeakyReLU(0.2)(blocks.Dense(units, kernel_initializer=blocks.dcgan_init())(h))
    logit = blocks.Dense(1, kernel_initializer=blocks.dcgan_init())(features)
    if blocks.mixed_precision():  # float32 outputs, as blocks.float32_output
        logit, features = (layers.Activation("linear", dtype="float32")(t)
                           for t in (logit, features))
    return keras.Model([x_in, z_in], [logit, features], name=name)


@register("egbad")
class EGBAD(AdversarialModel):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "d_z_units": 512,
                "d_units": 1024, "encoder_leaky": True, "learning_rate": 2e-4, "beta_1": 0.5,
                "alpha": 0.9, "score_discriminator": "feature"}
    RANGES = {"latent_dim": SIZE, "filters": SIZE, "d_z_units": SIZE,
              "d_units": SIZE, "encoder_leaky": ANY, "learning_rate": POSITIVE,
              "beta_1": ADAM_BETA, "alpha": UNIT,
              "score_discriminator": one_of("feature", "bce")}
    G_LOSS = "ge_loss"  # G and E are trained jointly, by one optimizer, against D
    LOGGED = ("ge_loss", "d_loss", "g_loss", "e_loss")

    def __init__(self, latent_dim, filters, d_z_units, d_units, encoder_leaky, learning_rate,
                 beta_1, alpha, score_discriminator, channels=1, image_size=32, **kwargs):
        super().__init__(learning_rate, beta_1, **kwargs)
        # Drawn from the global RNG that training seeds before building the model, so a
        # resumed run gets the same value; with the optimizer step it fixes each step's noise.
        self.noise_seed = int(np.random.randint(0, 2**31 - 1))
        self.latent_dim, self.alpha = latent_dim, alpha
        self.score_discriminator = score_discriminator
        self.image_size = image_size
        self.e = blocks.encoder(filters, latent_dim, channels, "e", leaky=encoder_leaky,
                                image_size=image_size)
        self.g = blocks.decoder(filters, latent_dim, channels, "g", image_size=image_size)
        self.d = discriminator(filters, latent_dim, d_z_units, d_units, channels, "d", image_size)

    @property
    def generator_variables(self):
        return self.g.trainable_variables + self.e.trainable_variables

    @property
    def discriminator_variables(self):
        return self.d.trainable_variables

    def sample_noise(self, batch_size):
        """Training noise, a function of (noise_seed, d_optimizer step) only."""
        return stateless_noise([batch_size, self.latent_dim], self.noise_seed,
                               self.d_optimizer.iterations)

    def losses_on(self, x, training):
        z_real = self.e(x, training=training)
        z_fake = self.sample_noise(tf.shape(x)[0])
        x_fake = self.g(z_fake, training=training)
        logit_real, _ = self.d([x, z_real], training=training)
        logit_fake, _ = self.d([x_fake, z_fake], training=training)
        d_loss = (tf.reduce_mean(bce_with_logits(logit_real, 1.0))
                  + tf.reduce_mean(bce_with_logits(logit_fake, 0.0)))
        e_loss = tf.reduce_mean(bce_with_logits(logit_real, 0.0))
        g_loss = tf.reduce_mean(bce_with_logits(logit_fake, 1.0))
        return {"ge_loss": g_loss + e_loss, "d_loss": d_loss, "g_loss": g_loss, "e_loss": e_loss}

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
            l_d = bce_with_logits(logit, 1.0)
        return self.alpha * l_g + (1.0 - self.alpha) * l_d
