"""Your own images: `--dataset=folder:PATH`.

PATH/train/ holds normal images; PATH/test/normal/ and PATH/test/anomalous/ are optional and
give metrics. PNG or JPEG, grayscale or RGB (all grayscale -> 1 channel, else 3), any sizes:
every image is resized (stretched, if not square) to the run's image_size by
preprocessing.resize_pixels, the resize the SavedModel applies to inputs of another size.
train/ is streamed from disk (decoded and resized in the tf.data pipeline, never held whole);
validation and test images are held in memory at the training size. With test folders, their
images are split stratified 25 % validation / 75 % test (as the pooled protocol does);
without, 10 % of train/ is held out as all-normal validation, the last epoch is kept and the
threshold is the 99th percentile of its scores. Every train/ file is decoded once before
training (verify_images), so an unreadable one is named before any work instead of failing
inside the tf.data pipeline; an image over MAX_PIXELS is refused from its header, before
decoding, wherever a file is read (training and scoring).
"""

import os
import re
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from anomaly_toolbox.data import FOLDER, check
from anomaly_toolbox.data.inputs import is_image_name
from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, resize_if_needed
from anomaly_toolbox.data.protocols import POOLED_VAL_SHARE
from anomaly_toolbox.data.splits import Splits, split_stratified
from anomaly_toolbox.errors import DataError, UsageError
from anomaly_toolbox.files import sha256

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# what Pillow opens a 16-bit grayscale PNG as ("I" before Pillow 10); convert("L") clips these
# at 255 instead of scaling, which turns a 16-bit image black and white
SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L")
HOLDOUT_SHARE = 0.1
# Largest image read, in pixels, checked on the header before decoding: 256x the largest
# training size (256x256), a 12-megapixel photo fits; decoding and resizing one as float32 RGB
# takes about 200 MB. Decompression bombs (a 15,000 x 15,000 PNG of a few hundred KB) do not.
MAX_PIXELS = 4096 * 4096
CAP = f"{MAX_PIXELS:,} pixels (4096 x 4096)"
_STREAMED = re.compile(r"UsageError: (invalid dataset: .*)")
_WARNINGS = threading.Lock()  # catch_warnings swaps a global: one tf.data thread at a time


def image_names(path, argument="input"):
    """Sorted PNG/JPEG names in `path` (is_image_name); a missing or empty folder is an error
    naming it."""
    if not os.path.isdir(path):
        raise UsageError(argument, path, "an existing folder of PNG/JPEG images")
    names = sorted(filter(is_image_name, os.listdir(path)))
    if not names:
        raise UsageError(argument, path, "a folder holding at least one PNG/JPEG image")
    return names


def too_large(path, pixels, argument="input"):
    return UsageError(argument, str(path), f"an image of at most {CAP}, got {pixels:,} pixels")


def open_image(path, argument="input"):
    """The PIL image of `path` with only its header read; an image over MAX_PIXELS (checked
    before any pixel is decoded) or an unreadable file is refused by name. So is a FIFO, socket
    or device named like an image: opening a FIFO waits for a writer, forever (train and score
    hung on one in a folder)."""
    from PIL import Image

    if os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
        raise UsageError(argument, str(path), "a regular image file, not a FIFO, socket or "
                                              "device")
    try:
        with _WARNINGS, warnings.catch_warnings():  # PIL's bomb warning: our cap is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:  # over PIL's limit, itself far over MAX_PIXELS
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise too_large(path, int(pixels.group(1)) if pixels else MAX_PIXELS + 1, argument) from e
    except Exception as e:  # hostile files raise more than OSError (SyntaxError, ValueError...)
        raise UsageError(argument, str(path), f"a readable image ({e})") from e
    if im.size[0] * im.size[1] > MAX_PIXELS:
        im.close()
        raise too_large(path, im.size[0] * im.size[1], argument)
    return im


def channels_of(paths, argument="input"):
    """1 if every image is grayscale, else 3; reads headers only, naming any unreadable or too
    large file."""
    gray = True
    for path in paths:
        with open_image(path, argument) as im:
            gray = gray and im.mode in GRAY_MODES
    return 1 if gray else 3


def verify_images(paths, argument="input"):
    """channels_of, after decoding every file once: files that are read only later (train/
    streams from disk) fail here, by name, not in the middle of training. PIL's verify() misses
    truncated JPEGs, so each file is decoded (JPEGs at 1/8 scale: the whole entropy-coded
    stream is still read)."""
    gray = True
    for path in paths:
        with open_image(path, argument) as im:
            gray = gray and im.mode in GRAY_MODES
            try:
                if im.format == "JPEG":
                    im.draft(im.mode, (1, 1))
                im.load()
            except Exception as e:
                raise UsageError(argument, str(path), f"a readable image ({e})") from e
    return 1 if gray else 3


def read_image(path, channels, argument="input"):
    """uint8 (H, W, channels) at the file's own size; an unreadable or too large file is named."""
    from PIL import Image

    with open_image(path, argument) as im:
        try:
            if im.mode in SIXTEEN_BIT:  # 0..65535 -> 0..255, as an 8-bit export would round it
                eight = np.rint(np.asarray(im, np.float64) / 257).clip(0, 255).astype(np.uint8)
                im = Image.fromarray(eight)
            im = im.convert("L" if channels == 1 else "RGB")
            return np.asarray(im).reshape(im.size[1], im.size[0], channels)
        except Exception as e:
            raise UsageError(argument, str(path), f"a readable image ({e})") from e


def stream_error(e):
    """For a tf.data error raised by ImageFiles.load (a train/ file that stopped decoding
    after verify_images): a DataError with its one line naming the file; else None."""
    found = _STREAMED.search(str(e))
    return DataError(found.group(1)) if found else None


def fit_to(image, size):
    """One uint8 image resized to size x size exactly as training resizes (unchanged if it is)."""
    if image.shape[:2] == (size, size):
        return image
    x = tf.constant(image[np.newaxis], tf.float32)
    return resize_if_needed(x, size)[0].numpy().astype(np.uint8)


def read_images(paths, channels, size, argument="input"):
    """uint8 (N, size, size, channels): files of any size, each resized like training."""
    return np.stack([fit_to(read_image(p, channels, argument), size) for p in paths]) if paths \
        else np.zeros((0, size, size, channels), np.uint8)


@dataclass(frozen=True)
class ImageFiles:
    """Images on disk at a fixed size: what training streams instead of one big array."""
    paths: tuple
    channels: int
    size: int

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        index = np.arange(len(self.paths))[index]
        return ImageFiles(tuple(self.paths[i] for i in np.atleast_1d(index)), self.channels,
                          self.size)

    @property
    def shape(self):
        return (len(self.paths), self.size, self.size, self.channels)

    ndim, dtype = 4, np.uint8

    def load(self, path):
        """A tf.data map: a path -> uint8 (size, size, channels), decoded by PIL (as the scorer
        decodes) and resized in the graph."""
        image = tf.numpy_function(lambda p: read_image(os.fsdecode(p), self.channels, "dataset"),
                                  [path], tf.uint8, stateful=False)
        image.set_shape([None, None, self.channels])
        x = resize_if_needed(tf.cast(image[tf.newaxis], tf.float32), self.size)[0]
        return tf.ensure_shape(tf.cast(x, tf.uint8), [self.size, self.size, self.channels])

    def read(self):
        return read_images(self.paths, self.channels, self.size, "dataset")


def _source(path, names):
    """The images read, identified by count and one SHA-256 over relative names and contents."""
    names = sorted(names)
    return {"dataset": "folder", "kind": "folder", "files": len(names),
            "sha256": sha256([os.path.join(path, n) for n in names], names)}


def load_splits(spec, split_seed=0, image_size=IMAGE_SIZE):
    """Splits for `folder:PATH` at `image_size`; the images' channel count decides the model's.
    Validation and test indices point into train/'s sorted file list, or into test/normal/'s
    then test/anomalous/'s."""
    check(spec)
    path = spec[len(FOLDER):]
    train_dir = os.path.join(path, "train")
    train_names = image_names(train_dir, "dataset")
    train_paths = [os.path.join(train_dir, n) for n in train_names]
    if len(train_paths) < 2:
        raise UsageError("dataset", spec, f"at least 2 images in {train_dir}, found 1")
    channels = verify_images(train_paths, "dataset")  # streamed later: decoded once now
    train = ImageFiles(tuple(train_paths), channels, image_size)
    names = [f"train/{n}" for n in train_names]
    rng = np.random.default_rng(split_seed)
    normal_dir, anomalous_dir = (os.path.join(path, "test", d) for d in ("normal", "anomalous"))
    if os.path.isdir(normal_dir) or os.path.isdir(anomalous_dir):
        tests = [image_names(d, "dataset") for d in (normal_dir, anomalous_dir)]
        paths = [os.path.join(d, n) for d, ns in zip((normal_dir, anomalous_dir), tests) for n in ns]
        if channels_of(paths, "dataset") > channels:  # also names an unreadable file first
            print(f"note: {path}'s test/ holds RGB images and its train/ only grayscale ones: "
                  f"they are converted to grayscale, as the SavedModel converts any RGB image "
                  f"it scores", flush=True)
        names += [f"test/normal/{n}" for n in tests[0]] + [f"test/anomalous/{n}" for n in tests[1]]
        y = np.concatenate([np.zeros(len(tests[0]), np.int32), np.ones(len(tests[1]), np.int32)])
        val, test = split_stratified(y, POOLED_VAL_SHARE, rng)
        x = read_images(paths, channels, image_size, "dataset")
        return Splits(train, x[val], y[val], x[test], y[test], "folder", _source(path, names),
                      val, test)
    order = rng.permutation(len(train))
    n_val = max(1, int(round(HOLDOUT_SHARE * len(train))))
    val = np.sort(order[:n_val])
    return Splits(train[np.sort(order[n_val:])], train[val].read(), np.zeros(n_val, np.int32),
                  np.zeros((0, image_size, image_size, channels), np.uint8),
                  np.zeros(0, np.int32), "folder", _source(path, names), val, np.zeros(0, np.int64))
