"""Validation-only sweep of one score-time setting of a finished run (e.g. AnoGAN's Γ).

  python -m benchmarks.sweep --run_dir=runs/anogan_mnist_1 --key=search_steps --values=10,50,200

Restores the run's selected (best-validation) weights, rebuilds its splits, and scores the
VALIDATION split once per value; the test split is never read. Prints AUPRC, AUROC and time.
"""

import json
import time

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("run_dir", None, "Output folder of a finished anomaly_toolbox.train run.")
    flags.DEFINE_string("key", "search_steps", "Model config key to vary at scoring time.")
    flags.DEFINE_list("values", ["10", "50", "200"], "Values to try (parsed as JSON).")
    flags.DEFINE_string("data_dir", None, "As for anomaly_toolbox.train.")
    flags.DEFINE_string("output", None, "Also write the table as JSON here.")
    flags.DEFINE_integer("max_images", None, "Score only the first N validation images (cheaper).")


def parse_values(values):
    """Each value as JSON (`--values=1,abc` was a JSONDecodeError traceback)."""
    from anomaly_toolbox.errors import UsageError

    try:
        return [json.loads(v) for v in values]
    except json.JSONDecodeError:
        raise UsageError("values", ",".join(values), "JSON values, e.g. 10,50 or "
                         "'\"best_of_k\"'") from None


def check():
    """Before TensorFlow loads: --max_images=-5 scored all but the last 5 images, 0 none (an
    IndexError), and an --output that is a folder failed only once every value was scored."""
    from anomaly_toolbox.errors import check_integer
    from anomaly_toolbox.files import check_writable_file

    parse_values(FLAGS.values)
    if FLAGS.max_images is not None:
        check_integer("max_images", FLAGS.max_images, 1)
    if FLAGS.output:
        check_writable_file(FLAGS.output, "output")


def sweep(run_dir, key, values, data_dir=None, max_images=None):
    import tensorflow as tf

    from anomaly_toolbox import metrics, models
    from anomaly_toolbox.config import check_hyperparameter
    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.run.checkpoints import checked_best
    from anomaly_toolbox.run.rundir import RunDir
    from anomaly_toolbox.run.spec import RunSpec
    from anomaly_toolbox.models.precision import policy
    from anomaly_toolbox.run.scoring import score_images

    run_dir = RunDir(run_dir)
    if not run_dir.has_best_checkpoint():
        raise UsageError("run_dir", str(run_dir), "the folder of a run with a best checkpoint")
    spec = RunSpec.read(run_dir, data_dir)
    cls = models.get(spec.model)
    if key not in cls.DEFAULTS:
        raise UsageError("key", key, f"one of {sorted(cls.DEFAULTS)}")
    # as a config file's: search_steps=-3 or 1.5 scored as 0 or 1 steps under its own label
    values = [check_hyperparameter(cls, key, v, "values") for v in values]
    splits = load_splits(spec.dataset, spec.anomalous_class, spec.protocol, spec.split_seed,
                         spec.data_dir, spec.limit, spec.image_size)
    x_val, y_val = splits.x_val[:max_images], splits.y_val[:max_images]
    best = checked_best(run_dir)
    rows = []
    for value in values:
        with policy(spec.precision):  # as the run was built and scored
            model = cls(**{**spec.hyperparameters, key: value}, channels=splits.channels,
                        image_size=spec.image_size)
            model.compile()
        try:
            tf.train.Checkpoint(model=model).restore(best).assert_existing_objects_matched() \
                .expect_partial()
        except (ValueError, AssertionError):  # latent_dim: a traceback naming a kernel's shape
            raise UsageError("key", key, "a setting the trained weights do not depend on "
                             f"(another {key} builds other weights)") from None
        t0 = time.time()
        scores = score_images(model, x_val, padded=splits.padded)
        rows.append({key: value, **metrics.ranking_metrics(scores, y_val),
                     "mean_score": float(scores.mean()),
                     "seconds": round(time.time() - t0, 1), "images": len(scores)})
    return rows


def body():
    from anomaly_toolbox.files import write_json

    rows = sweep(FLAGS.run_dir, FLAGS.key, parse_values(FLAGS.values), FLAGS.data_dir,
                 FLAGS.max_images)
    print(f"| {FLAGS.key} | val AUPRC | val AUROC | mean score | seconds ({rows[0]['images']} images) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[FLAGS.key]} | {r['auprc']:.4f} | {r['auroc']:.4f} | {r['mean_score']:.5g} | "
              f"{r['seconds']} |")
    if FLAGS.output:
        write_json(FLAGS.output, rows)


if __name__ == "__main__":
    cli.main(define_flags, body, check)
