"""In-process scoring of uint8 images with a Keras model, in inference mode and in order."""

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, eval_dataset


def score_images(model, images, batch_size=256, progress=False):
    """Raw scores of uint8 images (N, 28, 28) or (N, 32, 32, C), aligned with `images`."""
    fn = getattr(model, "_score_fn", None)
    if fn is None:
        fn = model._score_fn = tf.function(
            model.score, input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, None])])
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    scores = []
    for batch in eval_dataset(images, batch_size):
        scores.append(fn(batch).numpy())
        if bar:
            bar.add(len(scores[-1]))
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)
