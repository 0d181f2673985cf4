import json

import pytest

from anomaly_toolbox import config
from anomaly_toolbox import models as registry
from anomaly_toolbox.errors import UsageError


def test_unknown_model_lists_known_names():
    with pytest.raises(UsageError, match="invalid model: 'gan'.*ganomaly"):
        registry.get("gan")
    assert "ganomaly" in registry.names()


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ganomaly")(type("Other", (), {}))


def _write(tmp_path, data):
    path = tmp_path / "c.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_config_file_overrides_defaults_and_flags_override_file(tmp_path):
    cls = registry.get("ganomaly")
    path = _write(tmp_path, {"epochs": 4, "model": {"filters": [8, 16, 32], "w_con": 10}})
    cfg = config.resolve(cls, path, batch_size=32)
    assert cfg["epochs"] == 4 and cfg["batch_size"] == 32
    assert cfg["model"]["filters"] == [8, 16, 32] and cfg["model"]["w_con"] == 10.0
    assert cfg["model"]["latent_dim"] == cls.DEFAULTS["latent_dim"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "valid JSON"),
    ({"epoch": 3}, "key: 'epoch'"),
    ({"model": {"latent": 3}}, "model key: 'latent'.*latent_dim"),
    ({"model": {"latent_dim": "big"}}, "latent_dim: 'big'"),
    ({"model": {"filters": [8, 16]}}, "filters: \\[8, 16\\]"),
    ({"epochs": 2.5}, "epochs: 2.5"),
])
def test_bad_config_files(tmp_path, content, message):
    with pytest.raises(UsageError, match=message):
        config.resolve(registry.get("ganomaly"), _write(tmp_path, content))


def test_missing_config_and_bad_budget(tmp_path):
    cls = registry.get("ganomaly")
    with pytest.raises(UsageError, match="invalid config: .*missing.json"):
        config.resolve(cls, str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="invalid epochs: 0"):
        config.resolve(cls, epochs=0)
    with pytest.raises(UsageError, match="invalid batch_size: -1"):
        config.resolve(cls, batch_size=-1)


def test_every_experiment_file_is_valid():
    import glob
    import os

    files = glob.glob(os.path.join(os.path.dirname(__file__), "..", "experiments", "*.json"))
    assert files
    for path in files:
        name = os.path.basename(path).split("_")[0]
        config.resolve(registry.get(name), path)


def test_every_model_declares_a_range_for_every_hyperparameter():
    for name in registry.names():
        cls = registry.get(name)
        assert set(cls.RANGES) == set(cls.DEFAULTS), name


@pytest.mark.parametrize("model_name", registry.names())
@pytest.mark.parametrize("key, value", [("learning_rate", -0.1), ("learning_rate", float("nan")),
                                        ("learning_rate", float("inf")), ("beta_1", 1.0),
                                        ("latent_dim", 0), ("filters", [8, -16, 32])])
def test_ranges_are_checked_for_every_model(tmp_path, model_name, key, value):
    path = _write(tmp_path, json.dumps({"model": {key: value}}))  # NaN/Infinity: Python's JSON
    with pytest.raises(UsageError, match=f"invalid config .*: {key}"):
        config.resolve(registry.get(model_name), path)
