"""Benchmark (not a test): f-AnoGAN's one-pass score vs AnoGAN's latent search (issue 18).

  python -m anomaly_toolbox.bench.fanogan_speed --images=256 --filters=32,64,128

Builds UNTRAINED models (the cost of a score does not depend on the weights) with the search
settings of AnoGAN's experiment files (Γ = 10 from the cpu profile, Γ = 500 from the paper
profile) and f-AnoGAN's cpu profile, all at the same widths; exports each (export.save) and
scores the same uint8 MNIST test images with what a plain tf.saved_model.load client gets, in
one process. Prints images/s of each and f-AnoGAN's speed-up over both searches.
"""

import tempfile

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS
CELLS = (("fanogan", "cpu"), ("anogan", "cpu"), ("anogan", "paper"))  # (model, profile)


def define_flags():
    """Defined on demand, so that importing this module defines no flags."""
    flags.DEFINE_integer("images", 256, "MNIST test images scored by every model.")
    flags.DEFINE_list("filters", ["32", "64", "128"], "Widths of every model.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz "
                        "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")


def measure(images, filters, data_dir, tmpdir):
    """[(label, img/s)] for every cell of CELLS on the first `images` MNIST test images."""
    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import models
    from anomaly_toolbox.bench import workload
    from anomaly_toolbox.bench.saved_model_speed import score_saved_model
    from anomaly_toolbox.data import datasets

    x_test = datasets.load("mnist", data_dir).x_test[:images]
    rows = []
    for name, profile in CELLS:
        cfg = config_lib.resolve(models.get(name), workload.config_path(name, profile))
        cfg["model"]["filters"] = list(filters)
        model = workload.build(name, cfg["model"])
        speed = score_saved_model(model, name, cfg, x_test, 3, images, images, tmpdir)
        steps = cfg["model"].get("search_steps")
        rows.append((name if steps is None else f"{name} Γ={steps}", speed["score_img_s"]))
    return rows


def body():
    import tensorflow as tf

    from anomaly_toolbox.bench.timing import load_average

    filters = [int(f) for f in FLAGS.filters]
    print(f"SavedModel scoring, untrained models, filters={filters}, {FLAGS.images} MNIST test "
          f"images; TF {tf.__version__}; {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        rows = measure(FLAGS.images, filters, FLAGS.data_dir, tmpdir)
    fanogan = rows[0][1]
    for label, img_s in rows:
        print(f"{label:16s} {img_s:10.1f} images/s   f-AnoGAN speed-up {fanogan / img_s:8.1f}x")
    print(load_average())


if __name__ == "__main__":
    cli.main(define_flags, body)
