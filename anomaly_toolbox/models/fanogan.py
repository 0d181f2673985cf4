"""f-AnoGAN (Schlegl et al. 2019, "f-AnoGAN: Fast unsupervised anomaly detection with generative
adversarial networks", Medical Image Analysis 54).

Stage 1, the first `gan_epochs` epochs: a WGAN-GP on normal images. The critic C is a conv trunk
whose 4x4 output is the feature layer f, then a linear head; it has layer norm, not batch norm,
because the gradient penalty is per image and batch norm would make C(x_i) depend on the batch.
Every train step is one critic update on

    mean C(G(z)) - mean C(x) + λ_GP · mean_i (‖∇ C(x̂_i)‖₂ - 1)²,   x̂_i = x_i + α_i (G(z_i) - x_i),

and every n_critic-th step is followed by one generator update on -mean C(G(z)).
Stage 2, the next `encoder_epochs` epochs: G and C frozen (G in inference mode), an encoder E
trained on izi_f = mean (x - G(E(x)))² + κ · mean (f(x) - f(G(E(x))))².
The anomaly score is izi_f per image in inference mode; reconstruct(x) = G(E(x)).

Defaults are the authors' code (github.com/tSchlegl/f-AnoGAN: wgangp_64x64.py, z_encoding_izif.py),
whose WGAN-GP settings are Gulrajani et al.'s (igul222/improved_wgan_training): λ_GP = 10,
n_critic = 5, Adam lr 1e-4, beta_1 0, beta_2 0.9, z of 128 dims, 7 GAN epochs; the encoder is
trained with RMSprop lr 5e-5 and κ = 1.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox.models import blocks, replicas
from anomaly_toolbox.models.adversarial import AdversarialModel, stateless_noise
from anomaly_toolbox.models.hyperparameters import ADAM_BETA, NON_NEGATIVE, POSITIVE, SIZE
from anomaly_toolbox.models.registry import register

CRITIC, CRITIC_AND_GENERATOR, ENCODER = "critic", "critic+generator", "encoder"
GAN_LOSSES = ("d_loss", "g_loss", "wasserstein", "gp")
ENCODER_LOSSES = ("izi_f", "residual", "feature")


def gradient_penalty(critic, x_hat):
    """(‖∇ C(x̂_i)‖₂ - 1)² per image (B,). The gradient of the SUM of the critic's outputs w.r.t.
    the batch is, row by row, each image's own gradient (C treats images independently). The
    1e-12 keeps the norm's derivative finite at a zero gradient."""
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        total = tf.reduce_sum(critic(x_hat))
    grads = tape.gradient(total, x_hat)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norms - 1.0)


class StageSwitch(keras.callbacks.Callback):
    """Puts the model in the stage of the epoch about to start. fit's epoch index is the run's
    (training calls fit with initial_epoch), so the stage is a function of the checkpointed epoch
    counter and a resumed run continues in the right stage. The stage names the logged losses:
    their means start the epoch at zero (fit reset the ones listed before the switch)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.encoding = epoch >= self.model.gan_epochs
        self.model.reset_metrics()


@register("fanogan")
class FAnoGAN(AdversarialModel):
    DEFAULTS = {"latent_dim": 128, "filters": [64, 128, 256], "gan_epochs": 7,
                "encoder_epochs": 63, "n_critic": 5, "lambda_gp": 10.0, "kappa": 1.0,
                "learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9,
                "encoder_learning_rate": 5e-5}
    RANGES = {"latent_dim": SIZE, "filters": SIZE, "gan_epochs": POSITIVE,
              "encoder_epochs": POSITIVE, "n_critic": SIZE, "lambda_gp": NON_NEGATIVE,
              "kappa": NON_NEGATIVE, "learning_rate": POSITIVE, "beta_1": ADAM_BETA,
              "beta_2": ADAM_BETA, "encoder_learning_rate": POSITIVE}
    STAGE_EPOCHS = ("gan_epochs", "encoder_epochs")  # config.resolve: epochs is their sum
    LOGGED = GAN_LOSSES + ENCODER_LOSSES

    def __init__(self, latent_dim, filters, gan_epochs, encoder_epochs, n_critic, lambda_gp,
                 kappa, learning_rate, beta_1, beta_2, encoder_learning_rate, channels=1,
                 image_size=32,
                 **kwargs):
        super().__init__(float(learning_rate), float(beta_1), **kwargs)
        self.latent_dim, self.gan_epochs = int(latent_dim), int(gan_epochs)
        self.n_critic = int(n_critic)
        self.lambda_gp, self.kappa, self.beta_2 = float(lambda_gp), float(kappa), float(beta_2)
        self.encoder_learning_rate = float(encoder_learning_rate)
        self.first_selectable_epoch = self.gan_epochs + 1  # validation selects an encoder epoch
        # The update the next step makes (CRITIC, CRITIC_AND_GENERATOR or ENCODER): fit sets it
        # on the host before each step; None outside fit, where a step (eager) follows the
        # schedule. Code tracing train_step itself sets it first.
        self.encoding, self.step_kind = False, None
        # As in AnoGAN: noise seeded by (critic step, salt), the salt drawn after the train seed.
        self.noise_salt = int(np.random.randint(0, 2**31 - 3))
        self.g = blocks.decoder(filters, latent_dim, channels, "g", image_size=image_size)
        self.d_features, self.d_logit = blocks.discriminator_pair(filters, channels, image_size,
                                                                  norm="layer")
        self.e = blocks.encoder(filters, latent_dim, channels, "e", image_size=image_size)

    @property
    def generator_variables(self):
        return self.g.trainable_variables

    @property
    def metrics(self):
        """The current stage's losses only: history.json has no encoder losses in a GAN epoch."""
        return [self.loss_means[name]
                for name in (ENCODER_LOSSES if self.encoding else GAN_LOSSES)]

    def compile(self, **kwargs):
        """The WGAN-GP Adam (with beta_2) for G and C, RMSprop for E; all built now, so a
        checkpoint can be restored before the first step."""
        def adam():
            return keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2)
        super().compile(g_optimizer=adam(), d_optimizer=adam(), **kwargs)
        self.e_optimizer = keras.optimizers.RMSprop(self.encoder_learning_rate)
        if self.loss_scaled:  # mixed_float16, as the base wraps G's and C's optimizers
            self.e_optimizer = keras.optimizers.LossScaleOptimizer(self.e_optimizer)
        self.e_optimizer.build(self.e.trainable_variables)

    def fit_callbacks(self):
        """Callbacks the run passes to every fit."""
        return [StageSwitch()]

    # ---------------------------------------------------------------- which update, per step

    def next_step_kind(self):
        """From checkpointed state only (the stage, the critic's step counter), so a resumed
        run continues the n_critic schedule exactly. Read on the host: eagerly only."""
        if not tf.executing_eagerly():
            raise RuntimeError("fanogan chooses each step's update on the host: set step_kind "
                               "before tracing train_step (fit does)")
        if self.encoding:
            return ENCODER
        step = int(self.d_optimizer.iterations.numpy())
        return CRITIC_AND_GENERATOR if (step + 1) % self.n_critic == 0 else CRITIC

    def make_train_function(self, force=False):
        """One compiled function per kind of step, chosen on the host before each step: a
        tf.cond around an optimizer update fails under tf.distribute (merge_call inside control
        flow). Keras traces a function at its first call, with step_kind set to its kind."""
        if self.train_function is not None and not force:
            return self.train_function
        if self.steps_per_execution != 1:
            raise ValueError("fanogan chooses its update per step: steps_per_execution must be 1")
        functions = {}
        for kind in (CRITIC, CRITIC_AND_GENERATOR, ENCODER):
            super().make_train_function(force=True)
            functions[kind] = self.train_function

        def train_function(iterator):
            self.step_kind = self.next_step_kind()
            try:
                return functions[self.step_kind](iterator)
            finally:
                self.step_kind = None

        self.train_function = train_function
        return train_function

    def train_step(self, x):
        kind = self.step_kind or self.next_step_kind()
        share = replicas.loss_share(x)
        if kind == ENCODER:
            return self.logged(self._encoder_step(x, share), x)
        losses = self._critic_step(x, share)
        if kind == CRITIC_AND_GENERATOR:
            self._generator_step(tf.shape(x)[0], share)
        return self.logged(losses, x)

    # ---------------------------------------------------------------- stage 1: WGAN-GP

    def critic(self, x):
        return self.d_logit(self.d_features(x, training=True), training=True)

    def _noise(self, shape, stream):
        return stateless_noise(shape, self.d_optimizer.iterations, self.noise_salt + stream)

    def _critic_step(self, x, share):
        batch = tf.shape(x)[0]
        fake = self.g(self._noise([batch, self.latent_dim], 0), training=True)
        # α ~ U(0, 1) per image, as Φ(N(0, 1)): the replica-aware stateless normal, transformed.
        alpha = 0.5 * (1.0 + tf.math.erf(self._noise([batch, 1, 1, 1], 1) / math.sqrt(2.0)))
        x_hat = x + alpha * (fake - x)
        with tf.GradientTape() as tape:
            c_real, c_fake = self.critic(x), self.critic(fake)
            wasserstein = tf.reduce_mean(c_real) - tf.reduce_mean(c_fake)
            gp = tf.reduce_mean(gradient_penalty(self.critic, x_hat))
            d_loss = -wasserstein + self.lambda_gp * gp
            scaled = self.d_optimizer.scale_loss(d_loss * share)  # loss scale: mixed_float16
        variables = self.discriminator_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return {"d_loss": d_loss, "g_loss": -tf.reduce_mean(c_fake), "wasserstein": wasserstein,
                "gp": gp}

    def _generator_step(self, batch, share):
        z = self._noise([batch, self.latent_dim], 2)
        with tf.GradientTape() as tape:
            scaled = self.g_optimizer.scale_loss(
                -tf.reduce_mean(self.critic(self.g(z, training=True))) * share)
        variables = self.generator_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))

    # ---------------------------------------------------------------- stage 2 and scoring

    def residuals(self, x, training):
        """Per image (B,): mean (x - G(E(x)))² and mean (f(x) - f(G(E(x))))². Only E may run in
        training mode: G's batch norm statistics and C stay as stage 1 left them."""
        rec = self.g(self.e(x, training=training), training=False)
        return (tf.reduce_mean(tf.square(x - rec), axis=[1, 2, 3]),
                tf.reduce_mean(tf.square(self.d_features(x, training=False)
                                         - self.d_features(rec, training=False)), axis=[1, 2, 3]))

    def _encoder_step(self, x, share):
        with tf.GradientTape() as tape:
            residual, feature = (tf.reduce_mean(r) for r in self.residuals(x, training=True))
            izi_f = residual + self.kappa * feature
            scaled = self.e_optimizer.scale_loss(izi_f * share)
        variables = self.e.trainable_variables
        self.e_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return {"izi_f": izi_f, "residual": residual, "feature": feature}

    def score(self, x):
        residual, feature = self.residuals(x, training=False)
        return residual + self.kappa * feature

    def reconstruct(self, x):
        return self.g(self.e(x, training=False), training=False)
