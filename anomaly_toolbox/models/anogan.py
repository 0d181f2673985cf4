"""AnoGAN (Schlegl et al. 2017, arXiv 1703.05921).

A DCGAN trained on normal images only: generator G (z -> 32x32 image) and discriminator D, a
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

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.models import blocks
from anomaly_toolbox.registry import register

SEARCH_INITS = ("zeros", "sample", "best_of_k")
# The latent search's Adam: Kingma & Ba defaults (as keras.optimizers.Adam).
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7


def _bce(labels_like, logits, label):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(labels_like), label), logits=logits))


@register("anogan")
class AnoGAN(keras.Model):
    DEFAULTS = {"latent_dim": 100, "filters": [64, 128, 256], "learning_rate": 2e-4,
                "beta_1": 0.5, "search_steps": 50, "search_learning_rate": 0.1, "lambda_": 0.1,
                "search_init": "zeros", "search_k": 8, "search_seed": 0}

    def __init__(self, latent_dim, filters, learning_rate, beta_1, search_steps,
                 search_learning_rate, lambda_, search_init, search_k, search_seed, channels=1,
                 **kwargs):
        super().__init__(**kwargs)
        _validate(latent_dim=latent_dim, filters=filters, learning_rate=learning_rate,
                  beta_1=beta_1, search_steps=search_steps,
                  search_learning_rate=search_learning_rate, lambda_=lambda_,
                  search_init=search_init, search_k=search_k, search_seed=search_seed)
        self.latent_dim = int(latent_dim)
        self.learning_rate, self.beta_1 = float(learning_rate), float(beta_1)
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
        self.g = blocks.decoder(filters, latent_dim, channels, "g")
        self.d_features = blocks.conv_trunk(filters, channels, "d_features")
        self.d_logit = blocks.logit_head(filters, "d_logit")

    @property
    def generator_variables(self):
        return self.g.trainable_variables

    @property
    def discriminator_variables(self):
        return self.d_features.trainable_variables + self.d_logit.trainable_variables

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = blocks.built_adam(self.generator_variables, self.learning_rate,
                                              self.beta_1)
        self.d_optimizer = blocks.built_adam(self.discriminator_variables, self.learning_rate,
                                             self.beta_1)

    # ---------------------------------------------------------------- training

    def sample_noise(self, batch_size):
        """Training noise, a function of (g_optimizer.iterations, noise_salt) only."""
        step = tf.cast(tf.convert_to_tensor(self.g_optimizer.iterations), tf.int64)
        seed = tf.stack([step, tf.constant(self.noise_salt, tf.int64)])
        return tf.random.stateless_normal([batch_size, self.latent_dim], seed=seed)

    def losses_on(self, x, z, training=True):
        """Non-saturating GAN losses (BCE with logits) on real x and generated G(z)."""
        fake = self.g(z, training=training)
        logit_real = self.d_logit(self.d_features(x, training=training), training=training)
        # One forward pass serves both losses: each gradient is taken only w.r.t. its own
        # network's variables, so D's loss never updates G and vice versa.
        logit_fake = self.d_logit(self.d_features(fake, training=training), training=training)
        d_loss = 0.5 * (_bce(logit_real, logit_real, 1.0) + _bce(logit_fake, logit_fake, 0.0))
        g_loss = _bce(logit_fake, logit_fake, 1.0)
        return {"g_loss": g_loss, "d_loss": d_loss,
                "d_real": tf.reduce_mean(tf.sigmoid(logit_real)),
                "d_fake": tf.reduce_mean(tf.sigmoid(logit_fake))}

    def train_step(self, x):
        z = self.sample_noise(tf.shape(x)[0])
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses_on(x, z, training=True)
        g_vars, d_vars = self.generator_variables, self.discriminator_variables
        g_grads = tape.gradient(losses["g_loss"], g_vars)
        d_grads = tape.gradient(losses["d_loss"], d_vars)
        del tape
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        return losses

    # ---------------------------------------------------------------- latent search

    def search_losses(self, x, z, f_x=None):
        """Per-image L(z) (B,) for images x (B, 32, 32, C) and latent codes z (B, latent_dim)."""
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
        g_c = self.g(candidates, training=False)                       # (k, 32, 32, C)
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


def _validate(**values):
    def positive_int(key):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise UsageError(key, v, "a positive integer")

    positive_int("latent_dim")
    positive_int("search_k")
    filters = values["filters"]
    if (not isinstance(filters, (list, tuple)) or len(filters) != 3
            or any(isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f <= 0
                   for f in filters)):
        raise UsageError("filters", filters, "a list of 3 positive integers (32 -> 16 -> 8 -> 4)")
    steps = values["search_steps"]
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise UsageError("search_steps", steps, "an integer >= 0")
    seed = values["search_seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UsageError("search_seed", seed, "an integer")
    for key in ("learning_rate", "search_learning_rate"):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
            raise UsageError(key, v, "a positive number")
    beta_1 = values["beta_1"]
    if isinstance(beta_1, bool) or not isinstance(beta_1, (int, float)) or not 0 <= beta_1 < 1:
        raise UsageError("beta_1", beta_1, "a number in [0, 1)")
    lam = values["lambda_"]
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam <= 1:
        raise UsageError("lambda_", lam, "a number in [0, 1]")
    if values["search_init"] not in SEARCH_INITS:
        raise UsageError("search_init", values["search_init"], f"one of {', '.join(SEARCH_INITS)}")
