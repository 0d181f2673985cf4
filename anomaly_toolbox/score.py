"""Score images with an exported SavedModel and write a CSV (id, score, is_anomaly).

  python -m anomaly_toolbox.score --saved_model=runs/ganomaly_mnist_0/saved_model \
      --input=images.npy --output=scores.csv

--input: a .npy array (N, H, W[, C]), an IDX images file (.gz or raw), or a folder of PNG/JPEG
images. Pixels are 0..255 (uint8 or float); H = W = 28 or 32.
"""

import csv
import io
import os

import numpy as np
from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("saved_model", None, "SavedModel folder written by anomaly_toolbox.train.")
    flags.DEFINE_string("input", None, ".npy file, IDX images file, or folder of PNG/JPEG images.")
    flags.DEFINE_string("output", "scores.csv", "CSV to write.")
    flags.DEFINE_integer("batch_size", 256, "Images per call of the SavedModel.")


def read_input(path, channels=1, resize_to=None):
    """Returns (ids, images) with images as (N, H, W, C) uint8 or float32; folder images are
    resized to `resize_to` when the model was trained on resized images."""
    from anomaly_toolbox.errors import UsageError

    if path is None or not os.path.exists(path):
        raise UsageError("input", path, "an existing .npy file, IDX file or image folder")
    if os.path.isdir(path):
        from anomaly_toolbox.data.folders import read_images

        ids, images = read_images(path, channels, resize_to)
    elif path.endswith(".npy"):
        try:
            images = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise UsageError("input", path, f"a numeric .npy array ({e})") from e
        ids = list(range(len(images))) if images.ndim else []
    else:
        from anomaly_toolbox.data.datasets import read_idx
        from anomaly_toolbox.errors import DataError

        try:
            images = read_idx(path, 0x0803)
        except DataError as e:
            raise UsageError("input", path, f"an IDX images file ({e})") from e
        ids = list(range(len(images)))
    return ids, validate_images(images, channels, path)


def validate_images(images, channels, name="input"):
    from anomaly_toolbox.errors import UsageError

    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise UsageError("input", name, f"uint8 or float pixels, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise UsageError("input", name, f"images shaped (N, H, W) or (N, H, W, C), got {images.shape}")
    if len(images) == 0:
        raise UsageError("input", name, "at least one image, got none")
    if images.shape[1] != images.shape[2] or images.shape[1] not in (28, 32):
        raise UsageError("input", name, f"28x28 or 32x32 images, got {images.shape[1:3]}")
    if images.shape[3] != channels:
        raise UsageError("input", name, f"{channels}-channel images, got {images.shape[3]}")
    if images.dtype != np.uint8:
        if not np.all(np.isfinite(images)):
            raise UsageError("input", name, "finite pixel values, found NaN or inf")
        images = images.astype(np.float32)
    return images


def score_all(loaded, images, batch_size):
    from keras.utils import Progbar

    bar, scores = Progbar(len(images), unit_name="image"), []
    for i in range(0, len(images), batch_size):
        scores.append(loaded.score(images[i:i + batch_size]).numpy())
        bar.add(len(scores[-1]))
    return np.concatenate(scores)


def body():
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import write_atomic
    from anomaly_toolbox.run import export

    if FLAGS.batch_size <= 0:
        raise UsageError("batch_size", FLAGS.batch_size, "a positive integer")
    if FLAGS.saved_model is None or not os.path.isdir(FLAGS.saved_model):
        raise UsageError("saved_model", FLAGS.saved_model, "an existing SavedModel folder")
    loaded, metadata = export.load(FLAGS.saved_model)
    ids, images = read_input(FLAGS.input, metadata.get("channels", 1), metadata.get("resize_to"))
    scores = score_all(loaded, images, FLAGS.batch_size)
    threshold = float(loaded.threshold.numpy())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "score", "is_anomaly"])
    for i, s in zip(ids, scores):
        writer.writerow([i, f"{s:.9g}", int(s >= threshold)])
    try:
        write_atomic(FLAGS.output, out.getvalue())
    except OSError as e:
        raise UsageError("output", FLAGS.output, f"a writable file path ({e.strerror})") from e
    print(f"scored {len(scores)} images ({int((scores >= threshold).sum())} above the "
          f"validation threshold {threshold:.4g}) -> {FLAGS.output}")


if __name__ == "__main__":
    cli.main(define_flags, body)
