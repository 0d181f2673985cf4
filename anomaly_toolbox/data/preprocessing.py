"""One fixed map from stored pixels to model inputs, shared by training, scoring and export.

Benchmark images (28x28) are zero-padded to 32x32 (the DCGAN blocks halve 32 -> 4); any other
size (a folder's files, a model trained at 64, 128 or 256) is resized by `resize_pixels`, the
one resize of the package. Pixel values 0..255 then map to [-1, 1] by x / 127.5 - 1: no
per-image or per-batch statistics, so a score never depends on what else is in the batch.
"""

import os

import tensorflow as tf

IMAGE_SIZE = 32  # the side benchmark images are padded to, and the default model side
PIXEL_RANGE = (0, 255)  # the stored pixel scale every model trains on (SavedModel metadata)
# What resize_pixels does, recorded in every SavedModel's metadata.
RESIZE = {"method": "bilinear", "antialias": True, "rounded": True,
          "aspect": "stretched to a square (no crop, no padding)"}


def resize_pixels(x, size):
    """float32 pixels (B, H, W, C) on 0..255 -> (B, size, size, C): bilinear, antialiased when
    shrinking, rounded to whole pixels (what a uint8 file of that size would hold), so training's
    resized images and the SavedModel's in-graph resize give the same bits. Non-square images
    are stretched."""
    y = tf.image.resize(x, [size, size], method="bilinear", antialias=True)
    return tf.clip_by_value(tf.round(y), 0.0, 255.0)


def resize_if_needed(x, size):
    """resize_pixels unless x already is size x size (then x itself, bit for bit)."""
    shape = tf.shape(x)
    same = tf.logical_and(tf.equal(shape[1], size), tf.equal(shape[2], size))
    return tf.cond(same, lambda: x, lambda: resize_pixels(x, size))


def _pad_to_32(x):
    """Centres images smaller than 32x32 (MNIST's 28x28) on a black 32x32 canvas."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    pad_h, pad_w = (IMAGE_SIZE - height) // 2, (IMAGE_SIZE - width) // 2
    return tf.cond(
        tf.logical_and(tf.greater_equal(height, IMAGE_SIZE), tf.greater_equal(width, IMAGE_SIZE)),
        lambda: x,
        lambda: tf.pad(x, [[0, 0], [pad_h, IMAGE_SIZE - height - pad_h],
                           [pad_w, IMAGE_SIZE - width - pad_w], [0, 0]]))


def to_model_input(images, image_size=IMAGE_SIZE, pad=True):
    """uint8 or float (0..255) images, (B, H, W) or (B, H, W, C), to float32 (B, S, S, C) in
    [-1, 1], S = image_size. `pad`: benchmark data (28x28 padded to 32 first); else resized."""
    x = tf.cast(images, tf.float32)
    if x.shape.rank == 3:
        x = x[..., tf.newaxis]
    if pad:
        x = _pad_to_32(x)
    if not pad or image_size != IMAGE_SIZE:
        x = resize_if_needed(x, image_size)
    return tf.ensure_shape(x / 127.5 - 1.0, [None, image_size, image_size, None])


def _images(images):
    """A dataset of single images: an array's rows, or files decoded on the fly (data that
    need not fit in memory: anything with `paths` and a `load(path)` tf function). Paths go in
    as their bytes on disk: a str tensor takes no file name that is not UTF-8."""
    if hasattr(images, "load"):
        return tf.data.Dataset.from_tensor_slices([os.fsencode(p) for p in images.paths]), \
            images.load
    return tf.data.Dataset.from_tensor_slices(images), None


def _batched(ds, load, batch_size, image_size, pad):
    """Decodes files if `load` is given, then batches and maps to model input."""
    if load is not None:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).map(lambda x: to_model_input(x, image_size, pad),
                                    num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


def train_dataset(images, batch_size, seed, epoch, image_size=IMAGE_SIZE, pad=True, replicas=1):
    """Normal images for one epoch; the order is a function of (seed, epoch), so a resumed
    run sees exactly the batches an uninterrupted one would. Files are shuffled as names, then
    decoded and resized in the pipeline. Under several `replicas` (batch_size a multiple of
    them) the shuffled epoch is cut to a multiple of their count, at most replicas - 1 images,
    so the last batch splits evenly too: a replica left with no image fails the train step."""
    ds, load = _images(images)
    ds = ds.shuffle(len(images), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
    if replicas > 1:
        ds = ds.take(len(images) - len(images) % replicas)
    return _batched(ds, load, batch_size, image_size, pad)


def eval_dataset(images, batch_size, image_size=IMAGE_SIZE, pad=True):
    """Keeps order and the last partial batch, so scores align with labels."""
    ds, load = _images(images)
    return _batched(ds, load, batch_size, image_size, pad)
