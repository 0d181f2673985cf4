"""DCGAN-style building blocks for 32x32 images, shared by every architecture.

Each stride-2 4x4 convolution halves the side: 32 -> 16 -> 8 -> 4 with three widths, then a
4x4 valid convolution maps to a 1x1 latent code (and the decoder mirrors it).
"""

import keras
from keras import layers

from anomaly_toolbox.models import replicas


def dcgan_init():
    """DCGAN initialisation. A new initializer per layer: one created at import would take its
    seed before keras.utils.set_random_seed runs, and runs would not repeat."""
    return keras.initializers.RandomNormal(stddev=0.02)


def batch_norm():
    """Per-replica statistics would make a mirrored run differ from one device; synchronised
    statistics over the global batch do not (and on one replica the layer is unchanged)."""
    return layers.BatchNormalization(synchronized=replicas.replicated())


def float32_output(model):
    """Under a mixed policy the network computes in bfloat16/float16 but hands float32 to the
    losses and scores (Keras' advice for outputs); under float32 nothing is added."""
    if keras.config.dtype_policy().compute_dtype != "float32":
        model.add(layers.Activation("linear", dtype="float32"))
    return model


def conv_trunk(filters, channels, name, leaky=True, output=True, norm="batch"):
    """32x32xC -> 4x4xfilters[-1]; `norm` ("batch" or "layer") on every block but the first
    (DCGAN). Layer norm (over each image's H, W, C, as in Gulrajani et al.'s WGAN-GP critic)
    keeps images independent, which a per-image gradient penalty needs. `output`: the trunk is
    a network's output (float32 under a mixed policy), not an inner part."""
    model = keras.Sequential(name=name)
    model.add(keras.Input((32, 32, channels)))
    for i, width in enumerate(filters):
        model.add(layers.Conv2D(width, 4, 2, "same", use_bias=False, kernel_initializer=dcgan_init()))
        if i > 0:
            model.add(batch_norm() if norm == "batch"
                      else layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5))
        model.add(layers.LeakyReLU(0.2) if leaky else layers.ReLU())
    return float32_output(model) if output else model


def encoder(filters, latent_dim, channels, name, leaky=True):
    """x (32x32xC) -> z (latent_dim,)."""
    model = conv_trunk(filters, channels, name, leaky, output=False)
    model.add(layers.Conv2D(latent_dim, 4, 1, "valid", use_bias=False, kernel_initializer=dcgan_init()))
    model.add(layers.Flatten())
    return float32_output(model)


def decoder(filters, latent_dim, channels, name):
    """z (latent_dim,) -> x (32x32xC) in [-1, 1]."""
    model = keras.Sequential(name=name)
    model.add(keras.Input((latent_dim,)))
    model.add(layers.Reshape((1, 1, latent_dim)))
    model.add(layers.Conv2DTranspose(filters[-1], 4, 1, "valid", use_bias=False,
                                     kernel_initializer=dcgan_init()))
    model.add(batch_norm())
    model.add(layers.ReLU())
    for width in reversed(filters[:-1]):
        model.add(layers.Conv2DTranspose(width, 4, 2, "same", use_bias=False,
                                         kernel_initializer=dcgan_init()))
        model.add(batch_norm())
        model.add(layers.ReLU())
    model.add(layers.Conv2DTranspose(channels, 4, 2, "same", activation="tanh",
                                     kernel_initializer=dcgan_init()))
    return float32_output(model)


def logit_head(filters, name):
    """4x4 features -> one real/fake logit per image."""
    return float32_output(keras.Sequential([
        keras.Input((4, 4, filters[-1])),
        layers.Conv2D(1, 4, 1, "valid", kernel_initializer=dcgan_init()),
        layers.Flatten(),
    ], name=name))

