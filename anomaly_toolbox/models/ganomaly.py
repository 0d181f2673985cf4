"""GANomaly (Akcay et al. 2018, arXiv 1805.06725).

Generator: encoder G_E -> decoder G_D -> second encoder E (own weights). Discriminator: a conv
trunk whose 4x4 output is the feature layer f, then a logit head. The anomaly score is the
distance between the two latent codes, ||G_E(x) - E(G_D(G_E(x)))||^2 averaged over latent dims.
"""

import keras
import tensorflow as tf

from anomaly_toolbox.models import blocks
from anomaly_toolbox.registry import register


@register("ganomaly")
class GANomaly(keras.Model):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "w_adv": 1.0, "w_con": 50.0,
                "w_enc": 1.0, "learning_rate": 2e-4, "beta_1": 0.5}

    def __init__(self, latent_dim, filters, w_adv, w_con, w_enc, learning_rate, beta_1,
                 channels=1, **kwargs):
        super().__init__(**kwargs)
        self.w_adv, self.w_con, self.w_enc = w_adv, w_con, w_enc
        self.learning_rate, self.beta_1 = learning_rate, beta_1
        self.g_e = blocks.encoder(filters, latent_dim, channels, "g_e")
        self.g_d = blocks.decoder(filters, latent_dim, channels, "g_d")
        self.e = blocks.encoder(filters, latent_dim, channels, "e")
        self.d_features = blocks.conv_trunk(filters, channels, "d_features")
        self.d_logit = blocks.logit_head(filters, "d_logit")

    @property
    def generator_variables(self):
        return (self.g_e.trainable_variables + self.g_d.trainable_variables
                + self.e.trainable_variables)

    @property
    def discriminator_variables(self):
        return self.d_features.trainable_variables + self.d_logit.trainable_variables

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = blocks.built_adam(self.generator_variables, self.learning_rate,
                                              self.beta_1)
        self.d_optimizer = blocks.built_adam(self.discriminator_variables, self.learning_rate,
                                             self.beta_1)

    def losses_on(self, x, training):
        z = self.g_e(x, training=training)
        x_hat = self.g_d(z, training=training)
        z_hat = self.e(x_hat, training=training)
        f_real = self.d_features(x, training=training)
        f_fake = self.d_features(x_hat, training=training)
        logit_real = self.d_logit(f_real, training=training)
        # One forward pass serves both losses: each gradient is taken only w.r.t. its own
        # network's variables, so D's loss never updates G and vice versa.
        logit_fake = self.d_logit(f_fake, training=training)
        adv = tf.reduce_mean(tf.square(f_real - f_fake))
        con = tf.reduce_mean(tf.abs(x - x_hat))
        enc = tf.reduce_mean(tf.square(z - z_hat))
        bce = keras.losses.binary_crossentropy
        d_loss = 0.5 * (tf.reduce_mean(bce(tf.ones_like(logit_real), logit_real, from_logits=True))
                        + tf.reduce_mean(bce(tf.zeros_like(logit_fake), logit_fake,
                                             from_logits=True)))
        g_loss = self.w_adv * adv + self.w_con * con + self.w_enc * enc
        return {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, "con": con, "enc": enc}

    def train_step(self, x):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses_on(x, training=True)
        g_vars, d_vars = self.generator_variables, self.discriminator_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(losses["g_loss"], g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(tape.gradient(losses["d_loss"], d_vars), d_vars))
        return losses

    def reconstruct(self, x):
        return self.g_d(self.g_e(x, training=False), training=False)

    def score(self, x):
        z = self.g_e(x, training=False)
        z_hat = self.e(self.g_d(z, training=False), training=False)
        return tf.reduce_mean(tf.square(z - z_hat), axis=-1)
