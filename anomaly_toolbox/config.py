"""Run configuration: model hyperparameters plus the training budget, from defaults, an
experiments/ JSON file and flags, in that order. Unknown or mistyped keys are errors."""

import json
import math
import os

from anomaly_toolbox.errors import UsageError, check_integer
from anomaly_toolbox.models.hyperparameters import violation

TRAINING_DEFAULTS = {"epochs": 15, "batch_size": 64}
# Far above any useful value (the papers use <= 100 epochs, batches <= 512), low enough that a
# typo (an extra zero or three) is refused at once instead of running for weeks or exhausting memory.
TRAINING_MAX = {"epochs": 10_000, "batch_size": 65_536}
FILE_KEYS = {"epochs", "batch_size", "precision", "image_size", "model", "profile", "description"}
# The side models train at (models/blocks.py adds a block per doubling); 32 = MNIST padded.
DEFAULT_IMAGE_SIZE = 32


def _check_type(key, value, default, source):
    if isinstance(default, bool) or default is None:
        ok = isinstance(value, type(default)) if default is not None else True
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, int) and not isinstance(default, bool):
            ok = ok and float(value).is_integer()
    elif isinstance(default, list):  # exact type: a bool is no width (True is an int)
        ok = isinstance(value, list) and len(value) == len(default) and all(
            type(v) is type(default[0]) for v in value)
    else:
        ok = isinstance(value, type(default))
    if ok and isinstance(default, (int, float, list)) and not isinstance(default, bool):
        ok = all(math.isfinite(v) for v in (value if isinstance(value, list) else [value])
                 if isinstance(v, (int, float)))
    if not ok:
        raise UsageError(f"{source}: {key}", value, f"a finite value like {default!r}")
    return type(default)(value) if isinstance(default, (int, float)) and not isinstance(default, bool) else value


def read_config_file(path):
    if not os.path.isfile(path):
        raise UsageError("config", path, "an existing JSON file, e.g. experiments/ganomaly_mnist_cpu.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError("config", path, f"valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise UsageError("config", path, "a JSON object")
    return _check_keys(data, f"config {path}")


def read_config(config):
    """A config file's keys, or a dict of them (the API's config={...}: what a notebook
    writes instead of a file), checked alike."""
    if isinstance(config, (str, os.PathLike)):
        return read_config_file(config)
    if not isinstance(config, dict):
        raise UsageError("config", config, "a JSON file's path, or a dict of its keys")
    return _check_keys(_as_json(config), "config")


def _as_json(config):
    """The dict as its file would read: a tuple is a list, a numpy scalar a number (a notebook
    writes filters=(4, 8, 16) or np.int64(32)); what JSON cannot hold is refused by name."""
    def plain(value):
        if getattr(value, "shape", None) == () and hasattr(value, "item"):
            return value.item()
        raise TypeError(f"{type(value).__name__} is not a JSON value")
    try:
        return json.loads(json.dumps(config, default=plain))
    except (TypeError, ValueError) as e:
        raise UsageError("config", config, f"a dict of JSON values ({e})") from None


def check_hyperparameter(model_cls, key, value, source="config"):
    """`value` of the model's `key` as its default's type, in its RANGES rule (the config
    file's check, and benchmarks.sweep's for each value it tries)."""
    checked = _check_type(key, value, model_cls.DEFAULTS[key], source)
    expected = violation(checked, model_cls.RANGES[key])
    if expected:
        raise UsageError(f"{source}: {key}", value, expected)
    return checked


def _check_keys(data, source):
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise UsageError(f"{source}: key", sorted(unknown)[0], f"one of {sorted(FILE_KEYS)}")
    for key in ("profile", "description"):  # recorded in results, tables and the SavedModel
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            raise UsageError(f"{source}: {key}", data[key], "a non-empty string")
    return data


def _image_size(value, flag, source):
    """The file's image_size unless the flag gives one; one of IMAGE_SIZES (square by construction)."""
    from anomaly_toolbox.models.blocks import IMAGE_SIZES  # keras: not for read_config_file

    if flag is not None:
        value, source = flag, None
    if type(value) is not int or value not in IMAGE_SIZES:  # 64.0 too, as epochs=10.0 is
        raise UsageError(f"{source}: image_size" if source else "image_size", value,
                         f"one of {', '.join(map(str, IMAGE_SIZES))}: the side of the square "
                         f"images the model trains at")
    return value


def resolve(model_cls, config=None, epochs=None, batch_size=None, precision=None,
            image_size=None):
    """Returns {"epochs", "batch_size", "precision", "image_size", "profile", "model": {...}},
    every value checked; "precision" is the concrete one ("auto" resolved on this machine).
    `config` is a JSON file or a dict of its keys (read_config)."""
    from anomaly_toolbox.models import precision as precision_lib

    data = read_config(config) if config is not None else {}
    source = f"config {config}" if isinstance(config, (str, os.PathLike)) else "config"
    model_cfg = dict(model_cls.DEFAULTS)
    if not isinstance(data.get("model", {}), (dict, type(None))):
        raise UsageError(f"{source}: model", data["model"],
                         'an object of hyperparameters, e.g. {"latent_dim": 100}')
    for key, value in (data.get("model") or {}).items():
        if key not in model_cls.DEFAULTS:
            raise UsageError(f"{source}: model key", key,
                             f"one of {sorted(model_cls.DEFAULTS)} for {model_cls.registered_name}")
        model_cfg[key] = check_hyperparameter(model_cls, key, value, source)
    resolved = {"profile": data.get("profile", "defaults" if config is None else "custom")}
    for key, flag in (("epochs", epochs), ("batch_size", batch_size)):
        value = _check_type(key, data.get(key, TRAINING_DEFAULTS[key]), TRAINING_DEFAULTS[key],
                            source)
        if flag is not None:
            value = flag
        resolved[key] = check_integer(key, value, 1, TRAINING_MAX[key])
    resolved["epochs"] = _staged_epochs(model_cls, model_cfg, resolved["epochs"],
                                        epochs is not None or "epochs" in data)
    requested = data.get("precision", "auto") if precision is None else precision
    resolved["precision"] = precision_lib.resolve(requested if isinstance(requested, str)
                                                  else repr(requested),
                                                  getattr(model_cls, "registered_name", None))
    resolved["image_size"] = _image_size(data.get("image_size", DEFAULT_IMAGE_SIZE), image_size,
                                         source)
    resolved["model"] = model_cfg
    return resolved


def _staged_epochs(model_cls, model_cfg, epochs, given):
    """A model trained in stages (STAGE_EPOCHS: model keys) runs for their sum: the default
    budget becomes that sum, and a budget given otherwise is an error. The sum is capped as
    epochs are (gan_epochs: 1e9 passed as a budget of 1e9 + 63 epochs)."""
    keys = getattr(model_cls, "STAGE_EPOCHS", ())
    total = sum(model_cfg[k] for k in keys)
    if total > TRAINING_MAX["epochs"]:
        raise UsageError(" + ".join(keys), total, f"at most {TRAINING_MAX['epochs']} epochs "
                                                  f"in all for {model_cls.registered_name}")
    if not keys or epochs == total:
        return epochs
    if given:
        raise UsageError("epochs", epochs, f"{' + '.join(keys)} = {total} for "
                                           f"{model_cls.registered_name}")
    return total
