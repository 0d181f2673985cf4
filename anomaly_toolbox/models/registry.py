"""Model name -> model class, in the style of TF Model Garden's registry.

It imports no model: each model file imports `register` and registers itself when
`anomaly_toolbox.models` (which imports every model file) is imported. `get` and `names` are
reached through that package, so the registry is always full when they run.
"""

from anomaly_toolbox.errors import UsageError

_MODELS = {}


def register(name):
    def decorator(cls):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered by {_MODELS[name].__name__}")
        _MODELS[name] = cls
        cls.registered_name = name
        return cls
    return decorator


def get(name):
    if name not in _MODELS:
        raise UsageError("model", name, f"one of {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def names():
    return sorted(_MODELS)
