"""AnoGAN (Schlegl et al. 2017, arXiv 1703.05921).

A DCGAN trained on normal images only: generator G (z -> SxS image) and discriminator D, a
conv trunk whose 4x4 output is the feature layer f, then a logit head. To score x, search the
latent space for the z whose G(z) best explains x: starting from z0, take Γ gradient steps on

    L(z) = (1 - λ) · mean|x - G(z)| + λ · mean|f(x) - f(G(z))|

(residual loss + feature-matching discrimination loss), with G and D frozen. The anomaly score
is L(z_Γ). The search is batched: every image of a batch gets its own z and its own hand-written
Adam state (m, v), all updated together by one `tf.while_loop` inside the caller's graph, so a
batch costs one graph execution instead of B x Γ small ones, and an image's score does not
depend on the batch it is in (the gradient of the SUM of per-image losses w.r.t. z_i is the
gradient of L_i alone).
"""

import numpy as np
import tensorflow as tf

from anomaly_toolbox.models import blocks
from anomaly_toolbox.models.adversarial import AdversarialModel, bce_with_logits, stateless_noise
from anomaly_toolbox.models.hyperparameters import (ADAM_BETA, POSITIVE, SEED, SIZE, STEPS, UNIT,
                                                    one_of)
from anomaly_toolbox.models.registry import register

SEARCH_INITS = ("zeros", "sample", "best_of_k")
# The latent search's Adam: Kingma & Ba defaults (as keras.optimizers.Adam).
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7


@register("anogan")
class AnoGAN(AdversarialModel):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "learning_rate": 2e-4,
                "beta_1": 0.5, "search_steps": 50, "search_learning_rate": 0.1, "lambda_": 0.1,
                "search_init": "zeros", "search_k": 8, "search_seed": 0}
    RANGES = {"latent_dim": SIZE, "filters": SIZE, "learning_rate": POSITIVE,
              "beta_1": ADAM_BETA, "search_steps": STEPS, "search_learning_rate": POSITIVE,
              "lambda_": UNIT, "search_init": one_of(*SEARCH_INITS), "search_k": SIZE,
              "search_seed": SEED}
    LOGGED = ("g_loss", "d_loss", "d_real", "d_fake")

    def __init__(self, latent_dim, filters, learning_rate, beta_1, search_steps,
                 search_learning_rate, lambda_, search_init, search_k, search_seed, channels=1,
                 image_size=32, **kwargs):
        super().__init__(float(learning_rate), float(beta_1), **kwargs)
        self.latent_dim = int(latent_dim)
        self.search_steps = int(search_steps)
        self.search_learning_rate = float(search_learning_rate)
        self.lambda_ = float(lambda_)
        self.search_init, self.search_k = search_init, int(search_k)
        self.search_seed = int(search_seed)
        # Training noise is stateless_normal(seed=[step, salt]): the salt comes from the global
        # numpy RNG (seeded by keras.utils.set_random_seed(train_seed) before the model is
        # built), so runs with different train seeds draw different noise, and the step comes
        # from the optimizer's checkpointed counter, so a resumed run draws the same noise.
        self.noise_salt = int(np.random.randint(0, 2**31 - 1))
        self.image_size = image_size
        self.g = blocks.decoder(filters, latent_dim, channels, "g", image_size=image_size)
        self.d_features, self.d_logit = blocks.discriminator_pair(filters, channels, image_size)

    @property
    def generator_variables(self):
        return self.g.trainable_variables

    # ---------------------------------------------------------------- training

    def sample_noise(self, batch_size):
        """Training noise, a function of (g_optimizer step, noise_salt) only."""
        return stateless_noise([batch_size, self.latent_dim], self.g_optimizer.iterations,
                               self.noise_salt)

    def losses_on(self, x, training):
        """Non-saturating GAN losses (BCE with logits) on real x and generated G(z)."""
        z = self.sample_noise(tf.shape(x)[0])
        fake = self.g(z, training=training)
        logit_real = self.d_logit(self.d_features(x, training=training), training=training)
        logit_fake = self.d_logit(self.d_features(fake, training=training), training=training)
        d_loss = 0.5 * (tf.reduce_mean(bce_with_logits(logit_real, 1.0))
                        + tf.reduce_mean(bce_with_logits(logit_fake, 0.0)))
        g_loss = tf.reduce_mean(bce_with_logits(logit_fake, 1.0))
        return {"g_loss": g_loss, "d_loss": d_loss,
                "d_real": tf.reduce_mean(tf.sigmoid(logit_real)),
                "d_fake": tf.reduce_mean(tf.sigmoid(logit_fake))}

    # ---------------------------------------------------------------- latent search

    def search_losses(self, x, z, f_x=None):
        """Per-image L(z) (B,) for images x (B, S, S, C) and latent codes z (B, latent_dim)."""
        if f_x is None:
            f_x = self.d_features(x, training=False)
        g_z = self.g(z, training=False)
        residual = tf.reduce_mean(tf.abs(x - g_z), axis=[1, 2, 3])
        discrimination = tf.reduce_mean(
            tf.abs(f_x - self.d_features(g_z, training=False)), axis=[1, 2, 3])
        return (1.0 - self.lambda_) * residual + self.lambda_ * discrimination

    def initial_latents(self, x, f_x=None):
        """z0 (B, latent_dim). Never a function of an image's position in its batch."""
        batch = tf.shape(x)[0]
        if self.search_init == "zeros":
            return tf.zeros([batch, self.latent_dim])
        seed = tf.constant([self.search_seed, 0], tf.int64)
        if self.search_init == "sample":
            # One fixed-seed draw shared by every image.
            z0 = tf.random.stateless_normal([1, self.latent_dim], seed=seed)
            return tf.tile(z0, [batch, 1])
        # best_of_k: k fixed-seed candidates shared by all images; each image starts from the
        # candidate with the lowest L for it.
        if f_x is None:
            f_x = self.d_features(x, training=False)
        candidates = tf.random.stateless_normal([self.search_k, self.latent_dim], seed=seed)
        g_c = self.g(candidates, training=False)                       # (k, S, S, C)
        f_c = self.d_features(g_c, training=False)                     # (k, 4, 4, F)
        residual = tf.reduce_mean(tf.abs(x[:, None] - g_c[None]), axis=[2, 3, 4])  # (B, k)
        discrimination = tf.reduce_mean(tf.abs(f_x[:, None] - f_c[None]), axis=[2, 3, 4])
        losses = (1.0 - self.lambda_) * residual + self.lambda_ * discrimination
        return tf.gather(candidates, tf.argmin(losses, axis=1))

    def search(self, x):
        """Γ steps of per-image Adam on z; returns (z_Γ, L(z_Γ))."""
        x = tf.convert_to_tensor(x, tf.float32)
        f_x = self.d_features(x, training=False)
        z0 = self.initial_latents(x, f_x)
        lr = tf.constant(self.search_learning_rate, tf.float32)
        b1, b2 = tf.constant(ADAM_BETA_1), tf.constant(ADAM_BETA_2)

        def body(t, z, m, v):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(z)
                # The sum's gradient w.r.t. z_i is dL_i/dz_i: each image its own gradient.
                total = tf.reduce_sum(self.search_losses(x, z, f_x))
            grad = tape.gradient(total, z)
            t = t + 1
            m = b1 * m + (1.0 - b1) * grad
            v = b2 * v + (1.0 - b2) * tf.square(grad)
            tf_t = tf.cast(t, tf.float32)
            m_hat = m / (1.0 - tf.pow(b1, tf_t))
            v_hat = v / (1.0 - tf.pow(b2, tf_t))
            z = z - lr * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
            return t, z, m, v

        zeros = tf.zeros_like(z0)
        _, z, _, _ = tf.while_loop(
            lambda t, *_: t < self.search_steps, body, (tf.constant(0), z0, zeros, zeros),
            maximum_iterations=self.search_steps)
        return z, self.search_losses(x, z, f_x)

    def score(self, x):
        return self.search(x)[1]

    def reconstruct(self, x):
        return self.g(self.search(x)[0], training=False)

