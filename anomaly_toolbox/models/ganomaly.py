"""GANomaly (Akcay et al. 2018, arXiv 1805.06725).

Generator: encoder G_E -> decoder G_D -> second encoder E (own weights). Discriminator: a conv
trunk whose 4x4 output is the feature layer f, then a logit head. The anomaly score is the
distance between the two latent codes, ||G_E(x) - E(G_D(G_E(x)))||^2 averaged over latent dims.
Defaults are the paper's (w_adv = 1, w_con = 50, w_enc = 1; Adam 2e-4, beta_1 0.5).
"""

import tensorflow as tf

from anomaly_toolbox.models import blocks
from anomaly_toolbox.models.adversarial import AdversarialModel, bce_with_logits
from anomaly_toolbox.models.hyperparameters import ADAM_BETA, NON_NEGATIVE, POSITIVE, SIZE
from anomaly_toolbox.models.registry import register


@register("ganomaly")
class GANomaly(AdversarialModel):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "w_adv": 1.0, "w_con": 50.0,
                "w_enc": 1.0, "learning_rate": 2e-4, "beta_1": 0.5}
    RANGES = {"latent_dim": SIZE, "filters": SIZE, "w_adv": NON_NEGATIVE,
              "w_con": NON_NEGATIVE, "w_enc": NON_NEGATIVE, "learning_rate": POSITIVE,
              "beta_1": ADAM_BETA}
    LOGGED = ("g_loss", "d_loss", "adv", "con", "enc")

    def __init__(self, latent_dim, filters, w_adv, w_con, w_enc, learning_rate, beta_1,
                 channels=1, image_size=32, **kwargs):
        super().__init__(learning_rate, beta_1, **kwargs)
        self.w_adv, self.w_con, self.w_enc = w_adv, w_con, w_enc
        self.image_size = image_size
        self.g_e = blocks.encoder(filters, latent_dim, channels, "g_e", image_size=image_size)
        self.g_d = blocks.decoder(filters, latent_dim, channels, "g_d", image_size=image_size)
        self.e = blocks.encoder(filters, latent_dim, channels, "e", image_size=image_size)
        self.d_features, self.d_logit = blocks.discriminator_pair(filters, channels, image_size)

    @property
    def generator_variables(self):
        return (self.g_e.trainable_variables + self.g_d.trainable_variables
                + self.e.trainable_variables)

    def losses_on(self, x, training):
        """Paper's losses: adversarial (feature matching), contextual (L1), encoder (L2)."""
        z = self.g_e(x, training=training)
        x_hat = self.g_d(z, training=training)
        z_hat = self.e(x_hat, training=training)
        f_real = self.d_features(x, training=training)
        f_fake = self.d_features(x_hat, training=training)
        logit_real = self.d_logit(f_real, training=training)
        logit_fake = self.d_logit(f_fake, training=training)
        adv = tf.reduce_mean(tf.square(f_real - f_fake))
        con = tf.reduce_mean(tf.abs(x - x_hat))
        enc = tf.reduce_mean(tf.square(z - z_hat))
        d_loss = 0.5 * (tf.reduce_mean(bce_with_logits(logit_real, 1.0))
                        + tf.reduce_mean(bce_with_logits(logit_fake, 0.0)))
        g_loss = self.w_adv * adv + self.w_con * con + self.w_enc * enc
        return {"g_loss": g_loss, "d_loss": d_loss, "adv": adv, "con": con, "enc": enc}

    def reconstruct(self, x):
        return self.g_d(self.g_e(x, training=False), training=False)

    def score(self, x):
        z = self.g_e(x, training=False)
        z_hat = self.e(self.g_d(z, training=False), training=False)
        return tf.reduce_mean(tf.square(z - z_hat), axis=-1)
