"""Train, evaluate and export one model.

  python -m anomaly_toolbox.train --model=ganomaly --dataset=mnist --anomalous_class=0 \
      --config=experiments/ganomaly_mnist_cpu.json --output_dir=runs/ganomaly_mnist_0
"""

import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS


def define_flags():
    """Defined on demand, so that importing this module (tests do) defines no flags."""
    flags.DEFINE_string("model", "ganomaly", "Registered model name.")
    flags.DEFINE_string("dataset", "mnist", "mnist or fashion_mnist.")
    flags.DEFINE_integer("anomalous_class", 0, "The class held out as the anomaly.")
    flags.DEFINE_string("protocol", "pooled", "pooled (survey) or official.")
    flags.DEFINE_string("config", None, "JSON file from experiments/; flags below override it.")
    flags.DEFINE_integer("epochs", None, "Training epochs (default: from the config).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default: from the config).")
    flags.DEFINE_integer("train_seed", 0, "Seed of weights, noise and batch order.")
    flags.DEFINE_integer("split_seed", 0, "Seed of the train/val/test split (separate on purpose).")
    flags.DEFINE_string("data_dir", None, "Folder holding <dataset>/*-ubyte.gz "
                        "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")
    flags.DEFINE_string("output_dir", None, "Run folder (default runs/<model>_<dataset>_<class>).")
    flags.DEFINE_integer("limit", None, "Use only the first N images of each split (smoke tests).")
    flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 1 progress bar, 2 one line per epoch.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the progress output
    from anomaly_toolbox import training
    from anomaly_toolbox.datasets import DataError
    from anomaly_toolbox.errors import UsageError

    output_dir = FLAGS.output_dir or f"runs/{FLAGS.model}_{FLAGS.dataset}_{FLAGS.anomalous_class}"
    try:
        training.run(FLAGS.model, FLAGS.dataset, FLAGS.anomalous_class, output_dir,
                     protocol=FLAGS.protocol, config=FLAGS.config, epochs=FLAGS.epochs,
                     batch_size=FLAGS.batch_size, train_seed=FLAGS.train_seed,
                     split_seed=FLAGS.split_seed, data_dir=FLAGS.data_dir, verbose=FLAGS.verbose,
                     limit=FLAGS.limit)
    except (UsageError, DataError, training.DivergenceError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
