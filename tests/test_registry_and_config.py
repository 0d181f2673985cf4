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
    ({"model": {"filters": [True, 8, 16]}}, "filters: \\[True, 8, 16\\]"),  # export: TypeError
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


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64])
def test_search_seed_is_a_seed(tmp_path, seed):
    """2**64 was an OverflowError traceback when AnoGAN's search first ran, after an epoch."""
    path = _write(tmp_path, {"model": {"search_seed": seed}})
    with pytest.raises(UsageError, match=f"search_seed: {seed} .*0..4294967295"):
        config.resolve(registry.get("anogan"), path)


def test_a_saved_model_written_before_the_layout_change_still_loads_and_scores(mnist, tmp_path):
    """tests/data holds a tiny GANomaly SavedModel exported by commit 5d5a856 (the flat layout),
    with the scores that code gave the first 16 MNIST test images."""
    import os
    import subprocess
    import sys

    import numpy as np

    from anomaly_toolbox.run import export

    here = os.path.join(os.path.dirname(__file__), "data")
    path = os.path.join(here, "ganomaly_saved_model_5d5a856")
    expected = np.load(os.path.join(here, "ganomaly_saved_model_5d5a856_scores_first16.npy"))
    loaded, metadata = export.load(path)
    assert metadata["model"] == "ganomaly" and metadata["anomalous_class"] == 2
    np.testing.assert_allclose(loaded.score(mnist.x_test[:16]).numpy(), expected, rtol=1e-4)
    np.save(tmp_path / "x.npy", mnist.x_test[:16])
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.score", f"--saved_model={path}",
                           f"--input={tmp_path / 'x.npy'}", f"--output={tmp_path / 's.csv'}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = [float(line.split(",")[1]) for line in (tmp_path / "s.csv").read_text().split()[1:]]
    np.testing.assert_allclose(scores, expected, rtol=1e-4)  # scores ~1e-7: relative only


def test_default_run_folders_are_plain_names():
    """folder:PATH used to give runs/ganomaly_folder:PATH_0; now the folder's own name."""
    from anomaly_toolbox.train import default_output_dir

    assert default_output_dir("ganomaly", "mnist", 4) == "runs/ganomaly_mnist_4"
    assert default_output_dir("egbad", "folder:/data/my parts/", 0) == "runs/egbad_my parts"
    assert default_output_dir("egbad", "folder:imgs", 0) == "runs/egbad_imgs"


@pytest.mark.parametrize("model_name, key, value", [
    ("ganomaly", "latent_dim", 10**12), ("egbad", "d_units", 100_000),
    ("autoencoder", "filters", [8, 16, 10**6]), ("anogan", "search_steps", 10**9),
    ("fanogan", "n_critic", 10**7)])
def test_sizes_and_counts_have_an_upper_bound(tmp_path, model_name, key, value):
    """latent_dim 1e12 was accepted: met later as an out-of-memory traceback."""
    path = _write(tmp_path, {"model": {key: value}})
    with pytest.raises(UsageError, match=rf"invalid config .*: {key}: .* \(expected a value in"):
        config.resolve(registry.get(model_name), path)


@pytest.mark.parametrize("key, value", [("profile", 5), ("profile", ""), ("profile", ["cpu"]),
                                        ("description", {"a": 1}), ("description", None)])
def test_a_config_names_itself_with_a_string(tmp_path, key, value):
    """A profile of 5 or a list was recorded as is, in results.json and the tables."""
    path = _write(tmp_path, {key: value})
    with pytest.raises(UsageError, match=rf"invalid config .*: {key}: .*a non-empty string"):
        config.resolve(registry.get("ganomaly"), path)
    with pytest.raises(UsageError, match=rf"invalid config: {key}: .*a non-empty string"):
        config.resolve(registry.get("ganomaly"), {key: value})
