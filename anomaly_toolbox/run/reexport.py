"""A finished run's best weights exported again in another precision: a run trained in
mixed bfloat16 scores in bfloat16 by default; `export(..., "float32")` gives the same detector
computing in float32 (weights are float32 in either case, so nothing is lost or retrained)."""

import os

import tensorflow as tf

from anomaly_toolbox import models
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.metrics import Threshold
from anomaly_toolbox.models import precision as precision_lib
from anomaly_toolbox.run import export as export_lib
from anomaly_toolbox.run.checkpoints import checked_best
from anomaly_toolbox.run.rundir import RunDir


def export(run_path, output_dir, precision):
    """Writes a SavedModel of the run's selected epoch computing in `precision` to output_dir;
    its threshold, input handling and metadata are the run's, with config.precision changed."""
    precision = precision_lib.resolve(precision)
    run_dir = RunDir(run_path)
    if not run_dir.finished() or not run_dir.has_best_checkpoint():
        raise UsageError("run_dir", run_path, "a finished run folder (with results.json and "
                         "checkpoints/best)")
    if os.path.exists(output_dir):
        raise UsageError("output_dir", output_dir, "a folder that does not exist yet")
    loaded, metadata = export_lib.load(run_dir.saved_model)
    if metadata["model"] not in models.names():
        raise UsageError("run_dir", run_path,
                         f"a single model's run folder (this one holds a {metadata['model']!r})")
    if "image_size" not in metadata:
        raise UsageError("run_dir", run_path, "a run exported by this version (its SavedModel "
                         "has no input-handling metadata)")
    config = {**metadata["config"], "precision": precision}
    with precision_lib.policy(precision):
        model = models.get(metadata["model"])(**config["model"], channels=metadata["channels"],
                                              image_size=metadata["image_size"])
    best = checked_best(run_dir)
    tf.train.Checkpoint(model=model).restore(best).expect_partial().assert_existing_objects_matched()
    keep = {k: v for k, v in metadata.items()
            if k not in ("format", "threshold_rule", "image_size", "padded", "resize",
                         "anomaly_map")}
    threshold = Threshold(float(loaded.threshold.numpy()), metadata.get("threshold_rule", "f1"))
    return export_lib.save(model, output_dir, channels=metadata["channels"], threshold=threshold,
                           metadata={**keep, "config": config, "exported_from": run_path},
                           image_size=metadata["image_size"], padded=metadata["padded"])
