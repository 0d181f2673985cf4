"""Train, evaluate and export one model.

  anomaly-toolbox train --model=ganomaly --dataset=mnist --anomalous_class=4 --profile=cpu \
      --data_dir=../shared/data
  (or python -m anomaly_toolbox.train ...)

Without --profile or --config a model trains with its paper's settings: 15 epochs of
full-width networks, hours on a CPU. --profile=cpu (experiments/<model>_<dataset>_cpu.json,
shipped with the package) is the 2-epoch budget for 2 CPU cores.
"""

import os
import sys

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    from anomaly_toolbox import models

    flags.DEFINE_string("model", "ganomaly", f"One of {', '.join(models.names())}.")
    flags.DEFINE_string("dataset", "mnist", "mnist, fashion_mnist or folder:PATH (your own "
                        "images: PATH/train/ normal, optional PATH/test/{normal,anomalous}/; "
                        "PNG/JPEG of at most 4096 x 4096 pixels, each decoded once before "
                        "training: an unreadable or larger file is refused by name).")
    flags.DEFINE_integer("anomalous_class", 0, "The class held out as the anomaly.")
    flags.DEFINE_string("protocol", "pooled", "pooled (Zenati et al.'s EGBAD protocol) or "
                        "official (the official split).")
    flags.DEFINE_string("profile", None, "A named budget shipped with the package: cpu (2 "
                        "epochs at half width: minutes on a CPU), paper (the paper's settings: "
                        "hours), ... (experiments/<model>_<dataset>_<profile>.json).")
    flags.DEFINE_string("config", None, "JSON file from experiments/; flags below override it. "
                        "Left out: the paper's settings (15 epochs, full-width networks: hours "
                        "on a CPU); experiments/*_cpu.json trains in minutes.")
    flags.DEFINE_string("threshold", "f1", "How the exported threshold is chosen on validation: "
                        "f1 (F1-optimal) or fpr:RATE (flags a RATE share of validation normals, "
                        "e.g. fpr:0.01).")
    flags.DEFINE_integer("epochs", None, "Training epochs (default: from the config).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default: from the config).")
    flags.DEFINE_integer("image_size", None, "Side of the square images the model trains at: "
                         "32, 64, 128 or 256 (default: the config's, else 32). Folder images are "
                         "resized to it; each doubling adds one stride-2 block per network.")
    flags.DEFINE_integer("train_seed", 0, "Seed of weights, noise and batch order.")
    flags.DEFINE_integer("split_seed", 0, "Seed of the train/val/test split (separate on purpose).")
    flags.DEFINE_string("data_dir", None, "Folder holding <dataset>/*-ubyte.gz "
                        "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")
    flags.DEFINE_string("output_dir", None, "Run folder (default runs/<model>_<dataset>_<class>, "
                        "or runs/<model>_<folder name> for folder:PATH).")
    flags.DEFINE_integer("limit", None, "Use only the first N images of each split (smoke tests).")
    flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line "
                         "per epoch.", lower_bound=0, upper_bound=2)
    flags.DEFINE_string("strategy", "default", "default (one device), mirrored (all local GPUs, "
                        "or --cpu_devices logical CPUs) or multi_worker (cluster from TF_CONFIG); "
                        "--batch_size stays the global batch, a multiple of the replicas.")
    flags.DEFINE_string("precision", None, "float32, mixed_bfloat16 (CPUs with AVX512_BF16/AMX, "
                        "recent GPUs), mixed_float16 (GPUs, loss scaling) or auto (default: the "
                        "config's, else auto; auto is mixed_bfloat16 for the models that passed "
                        "the bfloat16 quality gate (ganomaly) on hardware with bfloat16, "
                        "else float32; see README).")
    flags.DEFINE_bool("record_test_curve", False, "Analysis only (the budget study): also score "
                      "the TEST split after every epoch into analysis/test_curve.json; model "
                      "selection never reads it.")
    flags.DEFINE_integer("cpu_devices", None, "With --strategy=mirrored on a CPU machine: this "
                         "many logical CPU devices (how the tests run it).")


def default_output_dir(model_name, dataset, anomalous_class):
    from anomaly_toolbox.data import FOLDER

    if dataset.startswith(FOLDER):
        folder = os.path.basename(os.path.normpath(dataset[len(FOLDER):])) or "folder"
        return os.path.join("runs", f"{model_name}_{folder}")
    return os.path.join("runs", f"{model_name}_{dataset}_{anomalous_class}")


def check():
    """Every flag that can be checked before TensorFlow is imported (see cli.main), by the
    checks training.run meets again: model, threshold rule, profile or config file, data."""
    from anomaly_toolbox import config, data, models, profiles
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.metrics import parse_threshold

    models.check(FLAGS.model)
    parse_threshold(FLAGS.threshold)
    path = profiles.config_file(FLAGS.model, FLAGS.dataset, FLAGS.profile, FLAGS.config)
    if path is not None:
        config.read_config_file(path)
    data.check(FLAGS.dataset, FLAGS.anomalous_class, FLAGS.protocol, FLAGS.data_dir, FLAGS.limit)
    if FLAGS.dataset.startswith(data.FOLDER):  # its own split: these would be ignored silently
        for name in ("anomalous_class", "protocol"):
            if FLAGS[name].present:
                raise UsageError(name, FLAGS[name].value, f"no --{name} with --dataset=folder:"
                                 "PATH: PATH/test/anomalous/ holds its anomalies, and its split "
                                 "is its own")


def body():
    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.spec import RunSpec

    spec = RunSpec.resolve(
        FLAGS.model, FLAGS.dataset, FLAGS.anomalous_class,
        FLAGS.output_dir or default_output_dir(FLAGS.model, FLAGS.dataset, FLAGS.anomalous_class),
        protocol=FLAGS.protocol, profile=FLAGS.profile, config=FLAGS.config, epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size, image_size=FLAGS.image_size, precision=FLAGS.precision,
        train_seed=FLAGS.train_seed, split_seed=FLAGS.split_seed, limit=FLAGS.limit,
        threshold=FLAGS.threshold, data_dir=FLAGS.data_dir)
    if FLAGS.profile is None and FLAGS.config is None:  # every flag passed; said, not silent
        print(f"note: no --profile or --config: {spec.model} trains with its paper's settings "
              f"({spec.epochs} epochs, hours on a CPU); --profile=cpu is the minutes-long budget",
              file=sys.stderr, flush=True)
    training.run(spec, verbose=FLAGS.verbose, record_test_curve=FLAGS.record_test_curve,
                 strategy=FLAGS.strategy, cpu_devices=FLAGS.cpu_devices)


if __name__ == "__main__":
    cli.main(define_flags, body, check)
