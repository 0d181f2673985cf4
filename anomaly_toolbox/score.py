"""Score images with an exported SavedModel and write a CSV (id, score, is_anomaly).

  anomaly-toolbox score --saved_model=runs/ganomaly_mnist_4/saved_model \
      --input=images.npy --output=scores.csv
  (or python -m anomaly_toolbox.score ...)

--input: a .npy array, an IDX images file (.gz or raw), one PNG/JPEG image, or a folder of
PNG/JPEG images. Pixels are 0..255 (any integer or float dtype), square: a model trained on a
folder takes any size (files are resized as training resized them, arrays in the SavedModel), a
benchmark model 28, 32 or its training size. Arrays are
(N, H, W, C), (N, H, W), one image (H, W) or (H, W, C) when C is the model's channel count.
Inputs are read batch by batch (a .npy is memory-mapped), so their size is not limited by RAM.
An image over 16,777,216 pixels (4096 x 4096), file or array, is refused by name; a file's size is
read from its header, before decoding (decompression bombs).
Arrays must hold pixels on the scale the model was trained on (metadata pixel_range, 0..255):
a float array whose values all lie in 0..1 is refused, unless --input_range=0..1 says to
rescale it.
--maps_dir=DIR also writes DIR/<id>_map.png per image (image | map overlaid | colour bar, one
scale per call) and adds map_max to the CSV.
"""

import csv
import io
import os

import numpy as np
from absl import flags

from anomaly_toolbox import cli
from anomaly_toolbox.input_checks import (MODEL_RANGE, check_idx_header, parse_input_range,
                                         pixel_range, to_model_range)

FLAGS = flags.FLAGS
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def define_flags():
    flags.DEFINE_string("saved_model", None, "SavedModel folder written by anomaly_toolbox.train.")
    flags.DEFINE_string("input", None, ".npy file, IDX images file, PNG/JPEG image or a folder "
                        "of them; images of at most 4096 x 4096 pixels.")
    flags.DEFINE_string("output", "scores.csv", "CSV to write.")
    flags.DEFINE_integer("batch_size", 256, "Images read and scored at a time.")
    flags.DEFINE_string("maps_dir", None, "Also write, per image, <id>_map.png: the image and "
                        "its anomaly map overlaid (one colour scale for the whole call, with a "
                        "colour bar); the CSV gains map_max. Models that reconstruct only.")
    flags.DEFINE_string("input_range", None, "The pixel scale of a .npy --input, if not the "
                        "model's (0..255): 0..1 rescales it to the model's. Image and IDX files "
                        "are always 0..255.")


def input_rule(metadata):
    """(channels, resize_to, sides) of a SavedModel: folder models resize files of any size to
    their training size (as training did) and take any square array; benchmark models take
    28 (padded), 32 and their training size. SavedModels from before image_size: resize_to and
    sides (28, 32) as they were."""
    channels = metadata.get("channels", 1)
    if "image_size" not in metadata:
        return channels, metadata.get("resize_to"), (28, 32)
    size = metadata["image_size"]
    if metadata.get("padded", True):
        return channels, None, tuple(sorted({28, 32, size}))
    return channels, size, None


def read_batches(path, channels=1, resize_to=None, batch_size=256, sides=(28, 32),
                 model_range=MODEL_RANGE, input_range=None):
    """(ids, iterator of (B, H, W, C) uint8/float32 batches): a folder is opened batch by batch
    and a .npy memory-mapped, so only one batch is ever in memory. Files are resized to
    `resize_to` if given; `sides` are the accepted square sides (None: any). Arrays are checked
    against `model_range` (see to_model_range); `input_range` applies to arrays only."""
    from anomaly_toolbox.errors import UsageError

    if path is None or not os.path.exists(path):
        raise UsageError("input", path, "an existing .npy, IDX or image file, or image folder")
    if input_range is not None and not path.endswith(".npy"):
        raise UsageError("input_range", "..".join(map(str, input_range)),
                         "no --input_range for image and IDX files: they hold 0..255 pixels")
    if os.path.isdir(path):
        ids = image_files(path)
        return ids, folder_batches(path, [os.path.join(path, n) for n in ids], channels,
                                   resize_to, batch_size, sides)
    if path.lower().endswith(IMAGE_SUFFIXES):
        return [os.path.basename(path)], iter([read_image_files([path], channels, resize_to,
                                                                path, sides=sides)])
    images = as_image_batch(read_array(path), channels, path, sides)
    return list(range(len(images))), (
        to_model_range(as_pixels(images[i:i + batch_size], path), path, model_range, input_range)
        for i in range(0, len(images), batch_size))


def read_input(path, channels=1, resize_to=None, sides=(28, 32)):
    """(ids, every image in one (N, H, W, C) array), for inputs known to fit in memory."""
    ids, batches = read_batches(path, channels, resize_to, sides=sides)
    return ids, np.concatenate(list(batches))


def image_files(folder):
    from anomaly_toolbox.data.folders import image_names

    return image_names(folder)


def folder_batches(folder, paths, channels, size, batch_size, sides=(28, 32)):
    """Opens `batch_size` files at a time; unless resized, every batch must have the first
    one's image size."""
    first = None
    for i in range(0, len(paths), batch_size):
        batch = read_image_files(paths[i:i + batch_size], channels, size, folder, first, sides)
        first = batch.shape[1:] if first is None else first
        yield batch


def read_image_files(paths, channels, size, name, shape=None, sides=(28, 32)):
    """One batch of image files, converted to the model's channels and, if `size` is given,
    resized exactly as training resized (so mixed sizes are fine)."""
    from anomaly_toolbox.data.folders import fit_to, read_image
    from anomaly_toolbox.errors import UsageError

    arrays = [read_image(p, channels) for p in paths]
    if size:
        arrays = [fit_to(a, size) for a in arrays]
    if len({a.shape for a in arrays} | ({tuple(shape)} if shape else set())) > 1:
        raise UsageError("input", name, "images that all have the same size")
    return check_shape(np.stack(arrays), channels, name, sides)


def read_array(path):
    """A .npy memory-mapped (read lazily), or an IDX images file."""
    from anomaly_toolbox.errors import UsageError

    if path.endswith(".npy"):
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise UsageError("input", path, f"a numeric .npy array ({e})") from e
    from anomaly_toolbox.data.datasets import read_idx
    from anomaly_toolbox.errors import DataError

    check_idx_header(path)
    try:
        return read_idx(path, 0x0803)
    except DataError as e:
        raise UsageError("input", path, f"an IDX images file, or a .npy, PNG or JPEG ({e})") from e


def as_image_batch(images, channels, name="input", sides=(28, 32)):
    """A (N, H, W, C) view of what users pass, by the SavedModel's rule: (H, W) is one grayscale
    image, (H, W, C) one image when C == channels, any other rank-3 array (N, H, W)."""
    from anomaly_toolbox.errors import UsageError

    if images.dtype == bool or not (np.issubdtype(images.dtype, np.integer) or
                                    np.issubdtype(images.dtype, np.floating)):
        raise UsageError("input", name, f"integer or float pixels, got dtype {images.dtype}")
    if images.ndim == 2:
        images = images[np.newaxis, ..., np.newaxis]
    elif images.ndim == 3:
        images = images[np.newaxis] if images.shape[2] == channels else images[..., np.newaxis]
    if images.ndim != 4:
        raise UsageError("input", name, f"images shaped (N, H, W[, C]) or one (H, W[, C]), "
                         f"got {images.shape}")
    return check_shape(images, channels, name, sides)


def check_shape(images, channels, name, sides=(28, 32)):
    from anomaly_toolbox.errors import UsageError

    if len(images) == 0:
        raise UsageError("input", name, "at least one image, got none")
    if images.shape[1] != images.shape[2]:
        raise UsageError("input", name, f"square images, got {images.shape[1:3]}")
    from anomaly_toolbox.data.folders import CAP, MAX_PIXELS

    if images.shape[1] * images.shape[2] > MAX_PIXELS:
        raise UsageError("input", name, f"images of at most {CAP}, got {images.shape[1:3]}")
    if sides and images.shape[1] not in sides:
        raise UsageError("input", name, f"{' or '.join(f'{s}x{s}' for s in sides)} images, "
                         f"got {images.shape[1:3]}")
    if images.shape[3] != channels:
        raise UsageError("input", name, f"{channels}-channel images, got {images.shape[3]}")
    return images


def as_pixels(batch, name="input"):
    """uint8 stays uint8; anything else becomes finite float32 (reads a memory-mapped slice)."""
    from anomaly_toolbox.errors import UsageError

    if batch.dtype == np.uint8:
        return np.ascontiguousarray(batch)
    batch = np.asarray(batch, np.float32)
    if not np.all(np.isfinite(batch)):
        raise UsageError("input", name, "finite pixel values, found NaN or inf")
    return batch


def score_batches(loaded, batches, total, maps_to=None):
    """(raw scores, per-image map maxima or None) of every batch, with a progress bar over
    `total` images; with `maps_to`, each batch's anomaly maps are kept there as maps_<i>.npy
    (only the maxima stay in memory)."""
    from keras.utils import Progbar

    bar, scores, maxima = Progbar(total, unit_name="image"), [], []
    for i, batch in enumerate(batches):
        scores.append(loaded.score(batch).numpy())
        if maps_to:
            maps = loaded.anomaly_map(batch).numpy()
            np.save(os.path.join(maps_to, f"maps_{i}.npy"), maps)
            maxima.append(maps.reshape(len(maps), -1).max(axis=1))
        bar.add(len(scores[-1]))
    return np.concatenate(scores), np.concatenate(maxima) if maps_to else None


def write_maps(maps_dir, ids, batches, kept, vmax):
    """One overlay PNG per image, on the scale 0..vmax (the largest map value of the call)."""
    from anomaly_toolbox.run import overlays

    start = 0
    for i, batch in enumerate(batches):
        maps = np.load(os.path.join(kept, f"maps_{i}.npy"))
        overlays.write(maps_dir, ids[start:start + len(batch)], batch, maps, vmax)
        start += len(batch)


def scores_and_maps(loaded, ids, read, maps_dir):
    """Scores (and, with `maps_dir`, map maxima after writing the overlays); `read()` gives a
    fresh iterator of the input's batches (the overlays need a second pass)."""
    import shutil
    import tempfile

    if not maps_dir:
        return score_batches(loaded, read(), len(ids))
    kept = tempfile.mkdtemp(prefix=".maps-", dir=maps_dir)
    try:
        scores, maxima = score_batches(loaded, read(), len(ids), kept)
        write_maps(maps_dir, ids, read(), kept, float(maxima.max()))
        return scores, maxima
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def check_maps_dir(maps_dir, metadata, saved_model):
    """Refuses a model without anomaly_map before any work (the folder was checked already)."""
    from anomaly_toolbox.errors import UsageError

    if maps_dir is not None and not metadata.get("anomaly_map"):
        raise UsageError("maps_dir", maps_dir, f"a model with anomaly_map ({saved_model} has none: "
                         f"it does not reconstruct, or was exported before anomaly maps)")


def write_csv(path, ids, scores, threshold, map_max=None):
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import write_atomic

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "score", "is_anomaly"] + (["map_max"] if map_max is not None else []))
    for row, (i, s) in enumerate(zip(ids, scores)):
        writer.writerow([i, f"{s:.9g}", int(s >= threshold)] +
                        ([f"{map_max[row]:.6g}"] if map_max is not None else []))
    try:
        write_atomic(path, out.getvalue())
    except OSError as e:
        raise UsageError("output", path, f"a writable file path ({e.strerror})") from e


def body():
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import ensure_writable_dir
    from anomaly_toolbox.run import export

    if FLAGS.batch_size <= 0:
        raise UsageError("batch_size", FLAGS.batch_size, "a positive integer")
    if FLAGS.saved_model is None or not os.path.isdir(FLAGS.saved_model):
        raise UsageError("saved_model", FLAGS.saved_model, "an existing SavedModel folder")
    input_range = parse_input_range(FLAGS.input_range)
    if FLAGS.maps_dir is not None:
        ensure_writable_dir(FLAGS.maps_dir, "maps_dir")  # before the slow model load
    loaded, metadata = export.load(FLAGS.saved_model)
    check_maps_dir(FLAGS.maps_dir, metadata, FLAGS.saved_model)
    channels, resize_to, sides = input_rule(metadata)
    how = dict(channels=channels, resize_to=resize_to, batch_size=FLAGS.batch_size, sides=sides,
               model_range=pixel_range(metadata), input_range=input_range)
    ids, _ = read_batches(FLAGS.input, **how)
    scores, map_max = scores_and_maps(loaded, ids, lambda: read_batches(FLAGS.input, **how)[1],
                                      FLAGS.maps_dir)
    threshold = float(loaded.threshold.numpy())
    write_csv(FLAGS.output, ids, scores, threshold, map_max)
    print(f"scored {len(scores)} images ({int((scores >= threshold).sum())} at or above the "
          f"validation threshold {threshold:.4g}) -> {FLAGS.output}")


if __name__ == "__main__":
    cli.main(define_flags, body)
