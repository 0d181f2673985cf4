"""Architectures, one file each; the first `get` imports (so registers) every model file.

A registered model is a keras.Model with:
  DEFAULTS             hyperparameters a config file may set (the papers' values, see each README),
  RANGES               the valid values of those hyperparameters (checked by `config.resolve`),
  __init__(**config, channels=..., image_size=32) and compile() creating and building its optimizers,
  train_step(x)        one tf.function-compiled update on a batch of normal images in [-1, 1],
                       logging epoch means of its losses (epoch_means.EpochMeansModel),
  score(x)             raw anomaly scores (B,), higher = more anomalous, inference mode only,
  reconstruct(x)       (optional) the model's reconstruction of x, for anomaly maps,
  fit_callbacks()      (optional) Keras callbacks the run passes to every fit,
  first_selectable_epoch  (optional, default 1) validation model selection ignores earlier epochs,
  STAGE_EPOCHS         (optional) model keys whose sum is the run's epochs (a staged model).

    from anomaly_toolbox.models import get
    model = get("ganomaly")(**get("ganomaly").DEFAULTS, channels=1)
"""

from importlib import import_module

from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.models import registry

__all__ = ["check", "get", "names", "register"]
# The model files, each registering the model of its own name. Named here, and imported on first
# `get`, so that a name is checked without importing them (and TensorFlow): the commands check
# --model before TensorFlow loads (cli.py).
FILES = ("anogan", "autoencoder", "egbad", "fanogan", "ganomaly")


def names():
    return sorted({*FILES, *registry.names()})


def check(name):
    """UsageError unless `name` is a model; imports none."""
    if name not in names():
        raise UsageError("model", name, f"one of {', '.join(names())}")


def get(name):
    check(name)
    _register_files()
    return registry.get(name)


def register(name):
    """`registry.register` for a model of one's own, after the package's models registered: a
    name one of them has is refused."""
    _register_files()
    return registry.register(name)


def _register_files():
    for file in FILES:  # all of them: the registry stays complete, as `names()` says
        import_module(f"{__name__}.{file}")
