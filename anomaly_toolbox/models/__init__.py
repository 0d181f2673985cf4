"""Architectures, one file each; importing this package registers every model.

A registered model is a keras.Model with:
  DEFAULTS             hyperparameters a config file may set (the papers' values, see each README),
  RANGES               the valid values of those hyperparameters (checked by `config.resolve`),
  __init__(**config, channels=..., image_size=32) and compile() creating and building its optimizers,
  train_step(x)        one tf.function-compiled update on a batch of normal images in [-1, 1],
  score(x)             raw anomaly scores (B,), higher = more anomalous, inference mode only,
  reconstruct(x)       (optional) the model's reconstruction of x, for anomaly maps.

    from anomaly_toolbox.models import get
    model = get("ganomaly")(**get("ganomaly").DEFAULTS, channels=1)
"""

from anomaly_toolbox.models import anogan, autoencoder, egbad, ganomaly  # noqa: F401 (register)
from anomaly_toolbox.models.registry import get, names, register

__all__ = ["get", "names", "register"]
