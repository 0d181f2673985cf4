"""One fixed map from stored pixels to model inputs, shared by training, scoring and export.

28x28 images are zero-padded to 32x32 (the DCGAN blocks halve 32 -> 4) and pixel values
0..255 map to [-1, 1] by x / 127.5 - 1: no per-image or per-batch statistics, so a score
never depends on what else is in the batch.
"""

import tensorflow as tf

IMAGE_SIZE = 32


def to_model_input(images, image_size=IMAGE_SIZE):
    """uint8 or float (0..255) images, (B, H, W) or (B, H, W, C), to float32 (B, S, S, C) in [-1, 1]."""
    x = tf.cast(images, tf.float32)
    if x.shape.rank == 3:
        x = x[..., tf.newaxis]
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    pad_h, pad_w = (image_size - height) // 2, (image_size - width) // 2
    x = tf.cond(
        tf.logical_and(tf.equal(height, image_size), tf.equal(width, image_size)),
        lambda: x,
        lambda: tf.pad(x, [[0, 0], [pad_h, image_size - height - pad_h],
                           [pad_w, image_size - width - pad_w], [0, 0]]))
    return tf.ensure_shape(x / 127.5 - 1.0, [None, image_size, image_size, None])


def train_dataset(images, batch_size, seed, epoch):
    """Normal images for one epoch; the order is a function of (seed, epoch), so a resumed
    run sees exactly the batches an uninterrupted one would."""
    ds = tf.data.Dataset.from_tensor_slices(images)
    ds = ds.shuffle(len(images), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
    return ds.batch(batch_size).map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


def eval_dataset(images, batch_size):
    """Keeps order and the last partial batch, so scores align with labels."""
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size) \
        .map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
