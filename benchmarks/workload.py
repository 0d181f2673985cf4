"""What the speed tools time: a model built the way run/training.py builds it, from the
repository's experiments/ configs, fed real preprocessed MNIST batches, so that the numbers
are those of the benchmark's own training runs (shared by speed and speed_settings' children)."""

import os

from benchmarks import EXPERIMENTS

SLOW_SEARCH_STEPS = 100  # a latent search this long (AnoGAN paper: Γ = 500) scores a few images only


def config_path(model_name, profile, experiments_dir=None):
    return os.path.join(experiments_dir or EXPERIMENTS,
                        f"{model_name}_mnist_{profile}.json")


def config(model_name, profile, experiments_dir=None):
    """The resolved config (defaults + the profile's file) a benchmark run of MNIST would train."""
    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import models

    return config_lib.resolve(models.get(model_name),
                              config_path(model_name, profile, experiments_dir))


def pooled_splits(data_dir):
    """MNIST class 0, pooled protocol, seed 0: the split every speed tool draws its images from."""
    from anomaly_toolbox.data import datasets, protocols

    return protocols.make_splits(datasets.load("mnist", data_dir), 0, "pooled", 0)


def build(model_name, model_config, deterministic=True, seed=0):
    """The model as training.run builds it (seed, op determinism, then compile)."""
    import keras
    import tensorflow as tf

    from anomaly_toolbox import models

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    model = models.get(model_name)(**model_config, channels=1)
    model.compile()
    return model


def compiled_step(model):
    """tf.function(model.train_step), the step the speed tables time. f-AnoGAN picks its update
    per step on the host inside fit (critic only, or critic + generator every n_critic steps);
    outside fit the timed step is its full GAN-stage step, critic + generator, as the published
    table timed it."""
    import tensorflow as tf

    from anomaly_toolbox.models import fanogan

    if isinstance(model, fanogan.FAnoGAN):
        model.step_kind = fanogan.CRITIC_AND_GENERATOR
    return tf.function(model.train_step)


def real_batches(images, batch_size, count=8):
    """`count` distinct preprocessed batches of real MNIST images, cycled by the timers."""
    from anomaly_toolbox.data.preprocessing import to_model_input

    count = max(1, min(count, len(images) // batch_size))
    return [to_model_input(images[i * batch_size:(i + 1) * batch_size]) for i in range(count)]
