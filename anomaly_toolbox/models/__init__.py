"""Architectures. Importing this package registers every model.

A registered model is a keras.Model with:
  DEFAULTS            dict of hyperparameters (the keys a config file may set),
  __init__(**config, channels=...), compile() creating and building its optimizers,
  train_step(x)       one tf.function-compiled update on a batch of normal images in [-1, 1],
  score(x)            raw anomaly scores (B,), higher = more anomalous, inference mode only,
  reconstruct(x)      (optional) the model's reconstruction of x, for anomaly maps.
"""

from anomaly_toolbox.models import anogan  # noqa: F401
from anomaly_toolbox.models import autoencoder  # noqa: F401
from anomaly_toolbox.models import egbad  # noqa: F401
from anomaly_toolbox.models import ganomaly  # noqa: F401
