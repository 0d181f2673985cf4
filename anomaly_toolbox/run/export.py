"""SavedModels that a plain `tf.saved_model.load` can score with, without this package.

`loaded.score(images)` takes pixels on the 0..255 scale as uint8, int32, int64, float32 or
float64, square, shaped
  (H, W)        one grayscale image,
  (H, W, C)     one image, when C equals the model's channels (1 or 3),
  (N, H, W)     any other rank-3 array: N grayscale images,
  (N, H, W, C)  N images,
and returns raw anomaly scores (N,). Preprocessing lives inside, as training did it: a model
trained on a folder resizes any square side to its training size (preprocessing.resize_pixels);
a benchmark model takes 28 (padded to 32), 32 and its training size. A wrong size or channel
count raises InvalidArgumentError saying which. Models that reconstruct also have
`loaded.anomaly_map(images)`: |x - reconstruction| averaged over channels, (N, H, W) float32 at
the input's resolution. `loaded.metadata` (JSON string) names the model, dataset, anomalous
class, config, `threshold_rule` and the input handling (image_size, padded, resize,
pixel_range: the 0..255 scale the model was trained on; absent before issue 40, meaning the
same). A float batch whose largest value lies in (0, 1] looks already scaled to 0..1 and raises
InvalidArgumentError (scored, it would read as a nearly black image; SavedModels exported before
this check score it silently, and this package's readers refuse it for them too).
`loaded.threshold` is the threshold chosen on validation data by that rule.

`reexport` writes a finished run's detector again computing in another precision.
"""

import json
import os
import shutil

import tensorflow as tf

from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, PIXEL_RANGE, RESIZE, to_model_input
from anomaly_toolbox.files import (check_writable_dir, checkpoints_above, naming_disk_full,
                                   saved_model_above, temp_dir_beside)
from anomaly_toolbox.models import folded

FORMAT = "anomaly_toolbox.scoring/1"
ACCEPTED_SIDES = (28, IMAGE_SIZE)
DTYPES = (tf.uint8, tf.int32, tf.int64, tf.float32, tf.float64)
# what other modules saved with save_module are traced for
BASIC_SPECS = [tf.TensorSpec([None] * rank, dtype, name="images")
               for dtype in (tf.uint8, tf.float32) for rank in (3, 4)]


def as_batch(images, channels):
    """float32 (N, H, W, C) from any accepted rank (see the module docstring): a rank-3 array
    whose last dimension equals `channels` is one image, any other a grayscale batch."""
    x = tf.cast(images, tf.float32)
    if images.shape.rank == 2:
        return x[tf.newaxis, ..., tf.newaxis]
    if images.shape.rank == 3:
        return tf.cond(tf.equal(tf.shape(x)[2], channels), lambda: x[tf.newaxis],
                       lambda: x[..., tf.newaxis])
    return x


def reconstruction_map(model, x):
    """(B, S, S): |x - reconstruction| averaged over channels, in model-input units (0..2)."""
    return tf.reduce_mean(tf.abs(x - model.reconstruct(x)), axis=-1)


def map_to_input(m, side, image_size, padded):
    """A (B, S, S) map back on the input's grid: resized (bilinear) to the side the input had
    before resizing, and a padded input's border cropped off."""
    target = tf.maximum(side, IMAGE_SIZE) if padded else side
    m = m[..., tf.newaxis]
    m = tf.cond(tf.equal(target, image_size), lambda: m,
                lambda: tf.image.resize(m, [target, target], "bilinear", antialias=True))
    offset = (target - side) // 2
    return m[:, offset:offset + side, offset:offset + side, 0]


def on_pixel_scale(images):
    """`images`, after an InvalidArgumentError if a float batch looks already scaled to 0..1
    (largest value in (0, 1]): scored silently, it would read as a nearly black image."""
    if not images.dtype.is_floating:
        return images
    top = tf.reduce_max(images)  # NaN: the finiteness check names it later; empty: -inf
    check = tf.debugging.Assert(
        tf.logical_not(tf.logical_and(top > 0, top <= 1)),
        [f"images must be pixels on {PIXEL_RANGE[0]}..{PIXEL_RANGE[1]}; this float batch lies in "
         "0..1 (largest value:", top, "): multiply it by 255"])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def on_the_scale(x):
    """An assertion that the finite values of `x` lie in PIXEL_RANGE: a plain TensorFlow client
    passing -1..1 or 0..65535 pixels gets an error, not a silently meaningless score."""
    low, high = PIXEL_RANGE
    finite = tf.where(tf.math.is_finite(x), x, float(low))  # NaN and inf: the check above
    least, most = tf.reduce_min(finite), tf.reduce_max(finite)
    return tf.debugging.Assert(
        tf.logical_and(least >= low, most <= high),  # empty: min inf, max -inf, passes
        [f"images must be pixels on {low}..{high}; got values from", least, "to", most])


def _unless_empty(x, compute, empty_shape):
    """compute() for a batch with images, float32 zeros of `empty_shape` for an empty one: some
    oneDNN kernels (seen on AVX-512) fail on a zero-sized batch, and an empty batch has an empty
    answer, as it has in NumPy."""
    return tf.cond(tf.shape(x)[0] > 0, lambda: tf.cast(compute(), tf.float32),
                   lambda: tf.zeros(empty_shape, tf.float32))


class ScoringModule(tf.Module):
    INPUT_SPECS = [tf.TensorSpec([None] * rank, dtype, name="images")
                   for dtype in DTYPES for rank in (2, 3, 4)]

    def __init__(self, model, channels, threshold, metadata, image_size=IMAGE_SIZE,
                 padded=True, fold=True):
        super().__init__()
        self.model = model  # its variables stay in the SavedModel, as before folding
        fold = fold and folded.foldable(model)
        self.serving = folded.serving(model) if fold else model
        if fold:
            self.folded = self.serving.networks  # tracked, so their variables are saved
        self.channels, self.image_size, self.padded = channels, image_size, padded
        self.threshold = tf.Variable(float(threshold), trainable=False, name="threshold")
        self.metadata = tf.Variable(json.dumps({"format": FORMAT, **metadata}), trainable=False,
                                    name="metadata")

    @tf.function
    def score(self, images):
        return self.score_batch(as_batch(on_pixel_scale(images), self.channels))

    @tf.function
    def anomaly_map(self, images):
        return self.map_batch(as_batch(on_pixel_scale(images), self.channels))

    def _checked_input(self, x):
        """The model input for a float32 (N, H, W, C) batch, after the checks users can fail."""
        shape = tf.shape(x)
        checks = [tf.debugging.assert_equal(shape[1], shape[2], message="images must be square")]
        if self.padded:
            sides = tuple(sorted({*ACCEPTED_SIDES, self.image_size}))
            checks.append(tf.debugging.assert_equal(
                tf.reduce_any(tf.equal(shape[1], sides)), True,
                message=f"image side must be one of {sides}"))
        checks += [
            tf.debugging.assert_equal(shape[3], self.channels,
                                      message=f"images must have {self.channels} channel(s)"),
            tf.debugging.assert_all_finite(x, "images contain NaN or inf"),
            on_the_scale(x),
        ]
        with tf.control_dependencies(checks):
            return to_model_input(tf.identity(x), self.image_size, self.padded)

    @tf.function(input_signature=[tf.TensorSpec([None] * 4, tf.float32)])
    def score_batch(self, x):
        """The model's graph, traced once and shared by every input signature of `score`."""
        x = self._checked_input(x)
        return _unless_empty(x, lambda: self.serving.score(x), [0])

    @tf.function(input_signature=[tf.TensorSpec([None] * 4, tf.float32)])
    def map_batch(self, x):
        """(N, H, W) anomaly map at the input's resolution, shared by every `anomaly_map` signature."""
        side = tf.shape(x)[1]
        x = self._checked_input(x)
        return _unless_empty(x, lambda: map_to_input(reconstruction_map(self.serving, x), side,
                                                     self.image_size, self.padded), [0, side, side])


def _signatures(module):
    """Trace score (and anomaly_map, if the model reconstructs) for every accepted dtype and
    rank, so each dispatches after loading."""
    fns = {}
    maps = hasattr(getattr(module, "model", None), "reconstruct")
    for spec in getattr(module, "INPUT_SPECS", BASIC_SPECS):
        fn = module.score.get_concrete_function(spec)
        if maps:
            module.anomaly_map.get_concrete_function(spec)
        if spec.dtype == tf.uint8 and spec.shape.rank == 4:
            fns["serving_default"] = fn
    return fns


def save(model, path, channels, threshold, metadata, image_size=IMAGE_SIZE, padded=True,
         fold=True):
    """`threshold` may be a metrics.Threshold; its rule is recorded in the metadata, with how
    inputs are brought to the model: `image_size`, `padded` (28 -> 32), the resize and
    `pixel_range`, the pixel scale it was trained on (floats all in 0..1 raise in the graph).
    `fold`: score and map a float32 model through models/folded.py's inference copies (faster,
    equal up to float rounding); False, or a bfloat16 model, traces the Keras networks."""
    metadata = {**metadata, "threshold_rule": getattr(threshold, "rule", "f1"),
                "image_size": image_size, "padded": padded, "resize": RESIZE,
                "pixel_range": list(PIXEL_RANGE),
                "anomaly_map": hasattr(model, "reconstruct")}
    module = ScoringModule(model, channels, threshold, metadata, image_size, padded, fold)
    return save_module(module, path)


def save_module(module, path):
    """Writes the SavedModel to a temporary folder beside `path`, then renames it into place; a
    full disk is DiskFullError naming `path`, with the previous SavedModel (if any) intact."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = temp_dir_beside(path)  # the umask's mode: a serving process of another user loads it
    try:
        with naming_disk_full(path):
            tf.saved_model.save(module, tmp, signatures=_signatures(module))
        if os.path.exists(path):
            old = tmp + ".old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load(path):
    """Loads one of our SavedModels, or says clearly why `path` is not one."""
    from anomaly_toolbox.errors import UsageError

    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise UsageError("saved_model", path, "a SavedModel directory written by anomaly_toolbox")
    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, IndexError, tf.errors.OpError) as e:  # truncated or corrupted
        # files (IndexError: a short variables file)
        raise UsageError("saved_model", path,
                         f"a complete SavedModel ({str(e).splitlines()[0][:200]})") from e
    try:
        metadata = json.loads(loaded.metadata.numpy().decode())
        assert metadata.get("format") == FORMAT
    except Exception as e:
        raise UsageError("saved_model", path,
                         f"a SavedModel written by anomaly_toolbox ({FORMAT}); this one is not") from e
    return loaded, metadata


def check_outside_saved_models(output_dir):
    """Inside another SavedModel (the run's own, say) the new one would be deleted with it when
    that one is exported again, and would ship inside it; inside a run's checkpoints/ it would
    sit among the files training and re-export restore from."""
    from anomaly_toolbox.errors import UsageError

    parent = saved_model_above(output_dir)
    if parent:
        raise UsageError("output_dir", output_dir, f"a folder outside any SavedModel "
                         f"({parent} is one)")
    checkpoints = checkpoints_above(output_dir)
    if checkpoints:
        raise UsageError("output_dir", output_dir, f"a folder outside any run's checkpoints "
                         f"({checkpoints} is one)")


def reexport(run_path, output_dir, precision):
    """A SavedModel of the run's selected epoch computing in `precision`, written to output_dir:
    a run trained in mixed bfloat16 scores in bfloat16, and its float32 export is the same
    detector computing in float32 (weights are float32 either way: nothing is lost or
    retrained). Threshold and input handling are the run's; the metadata is its RunSpec's with
    the precision changed, and names the run it was exported from. Returns (path, the
    precision it computes in: `auto` resolved for the run's model, as train resolves it)."""
    import dataclasses

    from anomaly_toolbox import models
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.metrics import Threshold
    from anomaly_toolbox.models import precision as precision_lib
    from anomaly_toolbox.run.checkpoints import checked_best
    from anomaly_toolbox.run.rundir import RunDir
    from anomaly_toolbox.run.spec import RunSpec

    precision_lib.resolve(precision)  # a bad name is refused before anything is read
    run_dir = RunDir(run_path)
    if not run_dir.finished() or not run_dir.has_best_checkpoint():
        raise UsageError("run_dir", run_path, "a finished run folder (with results.json and "
                         "checkpoints/best)")
    if os.path.exists(output_dir):
        raise UsageError("output_dir", output_dir, "a folder that does not exist yet")
    check_writable_dir(output_dir, "output_dir")  # under a file, or a read-only folder
    check_outside_saved_models(output_dir)
    loaded, metadata = load(run_dir.saved_model)
    if metadata["model"] not in models.names():
        raise UsageError("run_dir", run_path,
                         f"a single model's run folder (this one holds a {metadata['model']!r})")
    if "image_size" not in metadata:
        raise UsageError("run_dir", run_path, "a run exported by this version (its SavedModel "
                         "has no input-handling metadata)")
    precision = precision_lib.resolve(precision, metadata["model"])  # auto: as train's, per model
    spec = dataclasses.replace(RunSpec.read(run_dir), precision=precision)
    with precision_lib.policy(precision):
        model = models.get(spec.model)(**spec.hyperparameters, channels=metadata["channels"],
                                       image_size=spec.image_size)
    best = checked_best(run_dir)
    tf.train.Checkpoint(model=model).restore(best).expect_partial().assert_existing_objects_matched()
    threshold = Threshold(float(loaded.threshold.numpy()), metadata.get("threshold_rule", "f1"))
    path = save(model, output_dir, channels=metadata["channels"], threshold=threshold,
                metadata={**spec.saved_model_metadata(metadata["channels"]),
                          "exported_from": run_path},
                image_size=spec.image_size, padded=metadata["padded"])
    return path, precision