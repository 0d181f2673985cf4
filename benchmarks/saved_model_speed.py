"""Scoring speed as a user gets it: the exported SavedModel (export.save, then
tf.saved_model.load) on uint8 test images, not the in-process Keras model, so that the report's
score img/s includes what the export adds. A long latent search is timed on a few images."""

import os
import statistics

from benchmarks.timing import sync, timed_windows
from benchmarks.workload import SLOW_SEARCH_STEPS

SCORE_BATCH = 256


def score_saved_model(model, model_name, config, x_test, windows, score_images,
                      slow_score_images, tmpdir):
    """img/s of the exported SavedModel as a user runs it (export.save, tf.saved_model.load)."""
    import tensorflow as tf

    from anomaly_toolbox.run import export

    path = export.save(model, os.path.join(tmpdir, f"saved_model_{model_name}"), channels=1,
                       threshold=0.0, metadata={"model": model_name, "dataset": "mnist",
                                                "channels": 1, "config": config})
    loaded = tf.saved_model.load(path)
    slow = config["model"].get("search_steps", 0) >= SLOW_SEARCH_STEPS
    n = min(slow_score_images if slow else score_images, len(x_test))
    images = tf.constant(x_test[:n])
    batches = [images[i:i + SCORE_BATCH] for i in range(0, n, SCORE_BATCH)]
    sync(loaded.score(images[:min(n, 2 if slow else SCORE_BATCH)]))  # warm-up
    seconds = timed_windows(lambda i: [loaded.score(b) for b in batches][-1],
                            1 if slow else max(1, min(windows, 3)), 1)
    return {"score_img_s": n / statistics.median(seconds), "score_images": n,
            "score_note": (f"Γ={config['model']['search_steps']}, {n} images only" if slow
                           else (f"Γ={config['model']['search_steps']}"
                                 if "search_steps" in config["model"] else ""))}
