"""Combine finished runs into one detector, no retraining.

  python -m anomaly_toolbox.ensemble --members=runs/ganomaly_mnist_3,runs/egbad_mnist_3 \
      --output_dir=runs/ensemble_mnist_3

Members must share dataset, anomalous class, protocol, split seed (and --limit). Each member's
scores are standardised on its validation normals (median / MAD), then averaged; the threshold
is chosen on validation (--threshold, as for a single run). The output folder holds what a run's does (results.json listing the
members, scores.npz, figures) and one SavedModel that runs every member in one graph.
"""

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("members", None, "Run folders of finished runs (two or more).")
    flags.DEFINE_string("output_dir", None, "Folder for the ensemble (like a run folder).")
    flags.DEFINE_string("weighting", "mean", "mean, or val_auprc: weights proportional to each "
                        "member's validation AUPRC (never test).")
    flags.DEFINE_string("threshold", "f1", "How the ensemble's threshold is chosen on validation, "
                        "as for a single run: f1 (F1-optimal) or fpr:RATE (RATE of validation "
                        "normals flagged).")


def check():
    """The flags that can be checked before TensorFlow is imported (see cli.main)."""
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.metrics import parse_threshold

    if not FLAGS.output_dir:
        raise UsageError("output_dir", FLAGS.output_dir, "a folder for the ensemble")
    parse_threshold(FLAGS.threshold)


def body():
    from anomaly_toolbox import metrics
    from anomaly_toolbox.run import ensemble

    results = ensemble.build(FLAGS.members or [], FLAGS.output_dir, FLAGS.weighting,
                             FLAGS.threshold)
    test, members = results["test"], len(results["members"])
    rule = metrics.recorded_rule(results["validation"])
    said = metrics.threshold_said(metrics.Threshold(test["threshold"], rule), FLAGS.threshold)
    if "auprc" in test:
        print(f"ensemble of {members}: test AUPRC {test['auprc']:.4f}  AUROC {test['auroc']:.4f} "
              f"({said}) -> {FLAGS.output_dir}")
    else:  # said, not a silent exit 0: members whose test split lacks one of the two classes
        print(f"ensemble of {members}: no test AUPRC or AUROC: its test split needs anomalous and "
              f"normal images ({said}) -> {FLAGS.output_dir}")


if __name__ == "__main__":
    cli.main(define_flags, body, check)
