"""Architectures, one file each; importing this package registers every model.

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

from anomaly_toolbox.models import anogan, autoencoder, egbad, fanogan, ganomaly  # noqa: F401 (register)
from anomaly_toolbox.models.registry import get, names, register

__all__ = ["get", "names", "register"]
