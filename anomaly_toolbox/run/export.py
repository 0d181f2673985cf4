"""SavedModels that a plain `tf.saved_model.load` can score with, without this package.

`loaded.score(images)` takes (B, H, W) or (B, H, W, C) images, uint8 or float32 on the 0..255
pixel scale, H = W = 28 or 32, and returns raw anomaly scores (B,). Preprocessing lives inside.
`loaded.metadata` (JSON string) names the model, dataset, anomalous class and config;
`loaded.threshold` is the F1-optimal threshold chosen on validation data.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, to_model_input

FORMAT = "anomaly_toolbox.scoring/1"
ACCEPTED_SIDES = (28, IMAGE_SIZE)


class ScoringModule(tf.Module):
    def __init__(self, model, channels, threshold, metadata):
        super().__init__()
        self.model = model
        self.channels = channels
        self.threshold = tf.Variable(float(threshold), trainable=False, name="threshold")
        self.metadata = tf.Variable(json.dumps({"format": FORMAT, **metadata}), trainable=False,
                                    name="metadata")

    @tf.function
    def score(self, images):
        x = images if images.shape.rank == 4 else images[..., tf.newaxis]
        shape = tf.shape(x)
        checks = [
            tf.debugging.assert_equal(shape[1], shape[2], message="images must be square"),
            tf.debugging.assert_equal(
                tf.reduce_any(tf.equal(shape[1], ACCEPTED_SIDES)), True,
                message=f"image side must be one of {ACCEPTED_SIDES}"),
            tf.debugging.assert_equal(shape[3], self.channels,
                                      message=f"images must have {self.channels} channel(s)"),
        ]
        if images.dtype.is_floating:
            checks.append(tf.debugging.assert_all_finite(images, "images contain NaN or inf"))
        with tf.control_dependencies(checks):
            return self.model.score(to_model_input(x))


def _signatures(module):
    """Trace score for uint8 and float32, rank 3 and 4, so any of them dispatches after loading."""
    fns = {}
    for dtype in (tf.uint8, tf.float32):
        for shape in ([None, None, None], [None, None, None, None]):
            fn = module.score.get_concrete_function(tf.TensorSpec(shape, dtype, name="images"))
            if dtype == tf.uint8 and len(shape) == 4:
                fns["serving_default"] = fn
    return fns


def save(model, path, channels, threshold, metadata):
    return save_module(ScoringModule(model, channels, threshold, metadata), path)


def save_module(module, path):
    """Writes the SavedModel to a temporary folder beside `path`, then renames it into place."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".saved_model-", dir=parent)
    try:
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
    except (OSError, ValueError, tf.errors.OpError) as e:  # truncated or corrupted files
        raise UsageError("saved_model", path,
                         f"a complete SavedModel ({str(e).splitlines()[0][:200]})") from e
    try:
        metadata = json.loads(loaded.metadata.numpy().decode())
        assert metadata.get("format") == FORMAT
    except Exception as e:
        raise UsageError("saved_model", path,
                         f"a SavedModel written by anomaly_toolbox ({FORMAT}); this one is not") from e
    return loaded, metadata
