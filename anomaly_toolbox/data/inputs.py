"""Users' images for scoring, read and checked: .npy arrays (memory-mapped), IDX files, one PNG/JPEG
file or a folder of them, streamed batch by batch; for `anomaly-toolbox score` and
`api.Detector` alike.

What is checked here is what a SavedModel's graph cannot check well, or only after reading it
all: shapes and channels by the model's rule, the pixel scale (a float array already scaled to
0..1 would be scored silently as a nearly black image) and image sizes declared in a file's
header (decompression bombs), before the data is read. Importing this module imports no
TensorFlow: `score` checks its --input here before TensorFlow loads.
"""

import os

import numpy as np

from anomaly_toolbox.errors import UsageError, check_integer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODEL_RANGE = (0, 255)  # the pixel scale of SavedModels without metadata pixel_range
INPUT_RANGES = {"0..255": (0, 255), "0..1": (0, 1)}
RUN_FILES = ("run.json", "results.json", "saved_model.pb")  # a run's, an ensemble's, a SavedModel's


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


def pixel_range(metadata):
    """The pixel scale a SavedModel was trained on (every model so far: 0..255)."""
    return tuple(metadata.get("pixel_range", MODEL_RANGE))


def parse_input_range(value, argument="input_range"):
    """None (the model's own scale) or "0..1" / "0..255" -> (low, high)."""
    if value is None or value in INPUT_RANGES:
        return INPUT_RANGES.get(value)
    raise UsageError(argument, value, " or ".join(INPUT_RANGES))


def check_input(path, input_range=None):
    """Refuses a missing input or a device (/dev/zero would be read forever), and an input range
    for files that always hold 0..255 pixels."""
    if path is None or not (os.path.isfile(path) or os.path.isdir(path)):
        raise UsageError("input", path, "an existing .npy, IDX or image file, or image folder")
    made_by_us = [n for n in RUN_FILES
                  if os.path.isdir(path) and os.path.exists(os.path.join(path, n))]
    if made_by_us:  # its figures would be scored as images
        raise UsageError("input", path, f"a folder of images to score, not a run or SavedModel "
                         f"folder (it holds {made_by_us[0]})")
    if input_range is not None and not path.lower().endswith(".npy"):
        raise UsageError("input_range", "..".join(map(str, input_range)),
                         "no input range for image and IDX files: they hold 0..255 pixels")


def is_image_name(name):
    """A PNG/JPEG file name of a folder's, hidden ones left out as `ls` does (macOS's `._x.png`
    resource forks are not images)."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def input_files(path):
    """The files reading `path` opens: itself, or a folder's images; what `score --output` must
    not overwrite."""
    if not os.path.isdir(path):
        return [path]
    return [os.path.join(path, n) for n in os.listdir(path) if is_image_name(n)]


def read_batches(path, channels=1, resize_to=None, batch_size=256, sides=(28, 32),
                 model_range=MODEL_RANGE, input_range=None, option="--input_range={}"):
    """(ids, iterator of (B, H, W, C) uint8/float32 batches): a folder is opened batch by batch
    and a .npy memory-mapped, so only one batch is ever in memory. Files are resized to
    `resize_to` if given; `sides` are the accepted square sides (None: any). Arrays are checked
    against `model_range` (see to_model_range); `input_range` applies to arrays only, and
    `option` is how the caller's user passes one (a flag, or the API's keyword)."""
    check_input(path, input_range)
    check_batch_size(batch_size)
    if os.path.isdir(path):
        from anomaly_toolbox.data.folders import image_names

        ids = image_names(path)
        return ids, folder_batches(path, [os.path.join(path, n) for n in ids], channels,
                                   resize_to, batch_size, sides)
    if path.lower().endswith(IMAGE_SUFFIXES):
        return [os.path.basename(path)], iter([read_image_files([path], channels, resize_to,
                                                                path, sides=sides)])
    return array_batches(read_array(path), channels, path, sides, batch_size, model_range,
                         input_range, option)


def array_batches(images, channels, name, sides, batch_size, model_range=MODEL_RANGE,
                  input_range=None, option="--input_range={}"):
    """(ids, iterator of batches) of an array: its shape is checked at once, each batch's
    pixels when it is read; `option` formats how the user passes an input range."""
    check_batch_size(batch_size)
    images = as_image_batch(images, channels, name, sides)
    return list(range(len(images))), (
        to_model_range(as_pixels(images[i:i + batch_size], name), name, model_range, input_range,
                       option)
        for i in range(0, len(images), batch_size))


def check_batch_size(batch_size):
    check_integer("batch_size", batch_size, 1, expected="a positive integer")


def read_input(path, channels=1, resize_to=None, sides=(28, 32)):
    """(ids, every image in one (N, H, W, C) array), for inputs known to fit in memory."""
    ids, batches = read_batches(path, channels, resize_to, sides=sides)
    return ids, np.concatenate(list(batches))


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

    arrays = [read_image(p, channels) for p in paths]
    if size:
        arrays = [fit_to(a, size) for a in arrays]
    if len({a.shape for a in arrays} | ({tuple(shape)} if shape else set())) > 1:
        raise UsageError("input", name, "images that all have the same size")
    return check_shape(np.stack(arrays), channels, name, sides)


def read_array(path):
    """A .npy memory-mapped (read lazily), or an IDX images file."""
    if path.lower().endswith(".npy"):
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as e:  # EOFError: an empty file
            raise UsageError("input", path, f"a numeric .npy array ({e})") from e
    from anomaly_toolbox.data.datasets import read_idx
    from anomaly_toolbox.errors import DataError

    check_idx_header(path)
    try:
        return read_idx(path, 0x0803)
    except DataError as e:
        raise UsageError("input", path, f"an IDX images file, or a .npy, PNG or JPEG ({e})") from e


def check_idx_header(path):
    """Refuses an IDX images file whose header declares images over the size cap, before the
    (possibly gzipped: a decompression bomb) data is read; other faults are read_idx's."""
    import gzip
    import struct

    from anomaly_toolbox.data.folders import CAP, MAX_PIXELS

    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            header = f.read(16)
    except (OSError, EOFError):
        return
    if len(header) == 16 and header[:4] == b"\0\0\x08\x03":
        height, width = struct.unpack(">II", header[8:])
        if height * width > MAX_PIXELS:
            raise UsageError("input", path, f"images of at most {CAP}, the IDX header says "
                             f"{height}x{width}")


def as_image_batch(images, channels, name="input", sides=(28, 32)):
    """A (N, H, W, C) view of what users pass, by the SavedModel's rule: (H, W) is one grayscale
    image, (H, W, C) one image when C == channels, any other rank-3 array (N, H, W)."""
    if images.dtype.kind not in "iuf":  # not bool, complex, timedelta (numpy: an integer)...
        got = (f"text (dtype {images.dtype}); image files are scored by Detector.score_folder"
               if images.dtype.kind in "US" else f"dtype {images.dtype}")  # score("a.png")
        raise UsageError("input", name, f"integer or float pixels, got {got}")
    if images.ndim == 2:
        images = images[np.newaxis, ..., np.newaxis]
    elif images.ndim == 3:
        if images.shape[2] != channels and images.shape[0] == images.shape[1] != images.shape[2]:
            raise UsageError("input", name, f"images with {channels} channel(s); got one "
                             f"{images.shape[0]}x{images.shape[1]} image with {images.shape[2]}")
        images = images[np.newaxis] if images.shape[2] == channels else images[..., np.newaxis]
    if images.ndim != 4:
        raise UsageError("input", name, f"images shaped (N, H, W[, C]) or one (H, W[, C]), "
                         f"got {images.shape}")
    return check_shape(images, channels, name, sides)


def check_shape(images, channels, name, sides=(28, 32)):
    from anomaly_toolbox.data.folders import CAP, MAX_PIXELS

    if len(images) == 0:
        raise UsageError("input", name, "at least one image, got none")
    if images.shape[1] != images.shape[2]:
        raise UsageError("input", name, f"square images, got {images.shape[1:3]}")
    if images.shape[1] * images.shape[2] > MAX_PIXELS:
        raise UsageError("input", name, f"images of at most {CAP}, got {images.shape[1:3]}")
    if sides and images.shape[1] not in sides:
        raise UsageError("input", name, f"{' or '.join(f'{s}x{s}' for s in sides)} images, "
                         f"got {images.shape[1:3]}")
    if images.shape[3] != channels:
        raise UsageError("input", name, f"{channels}-channel images, got {images.shape[3]}")
    return images


def as_pixels(batch, name="input"):
    """uint8 stays uint8, and so do other integers on 0..255 (integers are never "already
    scaled to 0..1": a 0/1 int64 mask is dark pixels, as it is in uint8 and in the SavedModel);
    anything else becomes finite float32 (reads a memory-mapped slice). Checked before the
    cast, so the message names the values given: a float64 1e300 is not "inf", nor a uint64
    2**63 negative."""
    batch = np.asarray(batch)
    if batch.dtype == np.uint8:
        return np.ascontiguousarray(batch)
    if batch.dtype.kind in "iu":
        if batch.size and batch.min() >= 0 and batch.max() <= 255:
            return batch.astype(np.uint8)
    elif not np.all(np.isfinite(batch)):
        raise UsageError("input", name, "finite pixel values, found NaN or inf")
    elif batch.size and np.abs(batch).max() > np.finfo(np.float32).max:
        raise UsageError("input", name, f"pixel values a float32 holds; got values from "
                         f"{batch.min():g} to {batch.max():g}")
    return batch.astype(np.float32)


def to_model_range(batch, name="input", model_range=MODEL_RANGE, input_range=None,
                   option="--input_range={}"):
    """`batch` on the model's pixel scale. Values outside it are refused, and so is a float
    batch whose values all lie in 0..1 given to a 0..255 model (already scaled: it would be
    scored as a nearly black image, silently); `input_range` (the user's `option`) declares
    the batch's scale instead, and rescales it; `option` formats how the user passes it."""
    low, high = model_range
    if batch.dtype == np.uint8 and input_range is None and model_range == MODEL_RANGE:
        return batch
    least, most = (float(batch.min()), float(batch.max())) if batch.size else (low, low)
    got = f"got values from {least:g} to {most:g}"
    if input_range is not None:
        in_low, in_high = input_range
        if least < in_low or most > in_high:
            raise UsageError("input", name, f"pixels on {in_low}..{in_high}, as "
                             f"{option.format(f'{in_low}..{in_high}')} says; {got}")
        if tuple(input_range) != tuple(model_range):
            scale = (high - low) / (in_high - in_low)
            return ((np.asarray(batch, np.float32) - in_low) * scale + low).astype(np.float32)
        # declared on the model's scale: the 0..1 check below still applies, as the SavedModel's
        # graph applies it (a traceback from the graph, before)
    elif least < low or most > high:
        hint = (f"; divide by 255, or pass {option.format('0..255')} to have them rescaled"
                if high <= 1 and least >= 0 and most <= 255 else "")
        raise UsageError("input", name, f"pixels on {low}..{high}, the model's scale; {got}{hint}")
    if high > 1 and np.issubdtype(batch.dtype, np.floating) and 0 < most <= 1:
        raise UsageError("input", name, f"pixels on {low}..{high}, the model's scale; these float "
                         f"values all lie in 0..1: multiply them by 255, or pass "
                         f"{option.format('0..1')} to have them rescaled")
    return batch
