"""In-process scoring of uint8 images with a Keras model, in inference mode and in order."""

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, eval_dataset


def score_images(model, images, batch_size=256, progress=False, padded=True):
    """Raw scores of uint8 images (N, 28, 28) or (N, S, S, C), aligned with `images`; `padded`
    as in preprocessing.to_model_input, at the model's image size."""
    size = getattr(model, "image_size", IMAGE_SIZE)
    fn = getattr(model, "_score_fn", None)
    if fn is None:
        fn = model._score_fn = tf.function(
            model.score, input_signature=[tf.TensorSpec([None, size, size, None])])
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    scores = []
    for batch in eval_dataset(images, batch_size, size, padded):
        scores.append(fn(batch).numpy())
        if bar:
            bar.add(len(scores[-1]))
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)
