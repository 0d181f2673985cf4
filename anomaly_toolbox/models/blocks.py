"""DCGAN-style building blocks, shared by every architecture.

Each stride-2 4x4 convolution halves the side down to 4x4, then a 4x4 valid convolution maps to
a 1x1 latent code (and the decoder mirrors it). At 32x32 the blocks are the config's three
`filters` widths (32 -> 16 -> 8 -> 4). Larger images get one more block per doubling, as the
GANomaly reference does for its `isize`, at the deep end and each twice as wide as the one
before (the reference's pyramid: 64 -> 64, 128, 256, 512 at 64x64). Doubling rather than
repeating the last width keeps every block's cost about equal (the side halves, the width
doubles) and the 4x4 code as wide as the reference's, so a paper config means the paper's net.
"""

import keras
from keras import layers

from anomaly_toolbox.models import replicas

IMAGE_SIZES = (32, 64, 128, 256)


def widths(filters, image_size=32):
    """The stride-2 blocks' widths for `image_size`: `filters`, then one doubled width per
    doubling of the side beyond 32."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size {image_size} is not one of {IMAGE_SIZES}")
    out = list(filters)
    while 32 * 2 ** (len(out) - len(filters)) < image_size:
        out.append(out[-1] * 2)
    return out


def dcgan_init():
    """DCGAN initialisation. A new initializer per layer: one created at import would take its
    seed before keras.utils.set_random_seed runs, and runs would not repeat."""
    return keras.initializers.RandomNormal(stddev=0.02)


class Dense(layers.Dense):
    """keras Dense whose input gradient is computed as (W · dyᵀ)ᵀ. TF's MatMul gradient computes
    it as dy · Wᵀ (a transposed operand), which oneDNN's float32 GEMM ran at half the speed of
    the same products with the transposes made explicit: EGBAD's 2560 -> 1024 discriminator
    layer, 4 such products a step (benchmarks/README.md, Speed). Same weights, same names."""

    def call(self, inputs, training=None):
        x = _matmul(inputs, self.kernel)
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x


def _matmul(x, w):
    import tensorflow as tf

    @tf.custom_gradient
    def product(x, w):
        def grad(dy):
            return (tf.transpose(tf.matmul(w, tf.transpose(dy))),
                    tf.matmul(x, dy, transpose_a=True))
        return tf.matmul(x, w), grad
    # the variable's value (cast under mixed precision) goes in as a tensor; its gradient
    # reaches the variable through the read
    return product(x, tf.convert_to_tensor(w))


class BatchNormalization(layers.BatchNormalization):
    """keras BatchNormalization computed by TensorFlow's fused kernel (oneDNN's on CPUs). Keras 3
    builds it from about a dozen element-wise ops, each a pass over the activations: 2-3x the
    fused kernel's time forward and backward (benchmarks/README.md, Speed). Same variables and
    the same moving statistics (the biased batch variance, as Keras averages); synchronised
    statistics (several replicas), masks and renorm keep Keras' own path."""

    def call(self, inputs, training=None, mask=None):
        import tensorflow as tf

        rank = len(inputs.shape)
        if (mask is not None or self.synchronized or self.renorm or rank not in (2, 4)
                or self.axis not in (-1, rank - 1)):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if rank == 4 else inputs[:, None, None, :]  # a batch of 1x1 images
        width = x.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([width])
        beta = self.beta if self.center else tf.zeros([width])
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon)
            n = tf.cast(tf.size(x) // width, variance.dtype)
            variance = variance * (n - 1) / n  # the kernel returns the unbiased estimate
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum
                                        + variance * (1.0 - momentum))
        else:
            y = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, self.moving_mean, self.moving_variance,
                                       self.epsilon, is_training=False)[0]
        return tf.cast(y if rank == 4 else y[:, 0, 0, :], self.compute_dtype)


def batch_norm():
    """Per-replica statistics would make a mirrored run differ from one device; synchronised
    statistics over the global batch do not (and on one replica the layer is unchanged)."""
    return BatchNormalization(synchronized=replicas.replicated())


def float32_output(model):
    """Under a mixed policy the network computes in bfloat16/float16 but hands float32 to the
    losses and scores (Keras' advice for outputs); under float32 nothing is added."""
    if mixed_precision():
        model.add(layers.Activation("linear", dtype="float32"))
    return model


def mixed_precision():
    """True while building under a 16-bit compute policy (models/precision.py)."""
    return keras.config.dtype_policy().compute_dtype != "float32"


def conv_trunk(filters, channels, name, leaky=True, output=True, norm="batch", image_size=32):
    """SxSxC -> 4x4xwidths[-1]; `norm` ("batch" or "layer") on every block but the first
    (DCGAN). Layer norm (over each image's H, W, C, as in Gulrajani et al.'s WGAN-GP critic)
    keeps images independent, which a per-image gradient penalty needs. `output`: the trunk is
    a network's output (float32 under a mixed policy), not an inner part."""
    model = keras.Sequential(name=name)
    model.add(keras.Input((image_size, image_size, channels)))
    for i, width in enumerate(widths(filters, image_size)):
        model.add(layers.Conv2D(width, 4, 2, "same", use_bias=False, kernel_initializer=dcgan_init()))
        if i > 0:
            model.add(batch_norm() if norm == "batch"
                      else layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5))
        model.add(layers.LeakyReLU(0.2) if leaky else layers.ReLU())
    return float32_output(model) if output else model


def encoder(filters, latent_dim, channels, name, leaky=True, image_size=32):
    """x (SxSxC) -> z (latent_dim,)."""
    model = conv_trunk(filters, channels, name, leaky, output=False, image_size=image_size)
    model.add(layers.Conv2D(latent_dim, 4, 1, "valid", use_bias=False, kernel_initializer=dcgan_init()))
    model.add(layers.Flatten())
    return float32_output(model)


def decoder(filters, latent_dim, channels, name, image_size=32):
    """z (latent_dim,) -> x (SxSxC) in [-1, 1]."""
    sizes = widths(filters, image_size)
    model = keras.Sequential(name=name)
    model.add(keras.Input((latent_dim,)))
    model.add(layers.Reshape((1, 1, latent_dim)))
    model.add(layers.Conv2DTranspose(sizes[-1], 4, 1, "valid", use_bias=False,
                                     kernel_initializer=dcgan_init()))
    model.add(batch_norm())
    model.add(layers.ReLU())
    for width in reversed(sizes[:-1]):
        model.add(layers.Conv2DTranspose(width, 4, 2, "same", use_bias=False,
                                         kernel_initializer=dcgan_init()))
        model.add(batch_norm())
        model.add(layers.ReLU())
    model.add(layers.Conv2DTranspose(channels, 4, 2, "same", activation="tanh",
                                     kernel_initializer=dcgan_init()))
    return float32_output(model)


def logit_head(filters, name, image_size=32):
    """4x4 features (of the trunk for `image_size`) -> one real/fake logit per image."""
    return float32_output(keras.Sequential([
        keras.Input((4, 4, widths(filters, image_size)[-1])),
        layers.Conv2D(1, 4, 1, "valid", kernel_initializer=dcgan_init()),
        layers.Flatten(),
    ], name=name))


def discriminator_pair(filters, channels, image_size=32, norm="batch"):
    """The DCGAN discriminator as (d_features, d_logit): a conv trunk whose 4x4 output is the
    feature layer f (GANomaly's feature matching, AnoGAN's and f-AnoGAN's feature residuals),
    then the logit head. Two networks, so a model can read f without the head."""
    return (conv_trunk(filters, channels, "d_features", norm=norm, image_size=image_size),
            logit_head(filters, "d_logit", image_size))
