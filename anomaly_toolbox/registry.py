"""Model name -> model class. Model files register themselves on import (see models/__init__)."""

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
    import anomaly_toolbox.models  # noqa: F401  (fills the registry)
    from anomaly_toolbox.errors import UsageError

    if name not in _MODELS:
        raise UsageError("model", name, f"one of {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def names():
    import anomaly_toolbox.models  # noqa: F401

    return sorted(_MODELS)
