"""Quiet misuse of the Python API (anomaly_toolbox.api): each fault found by probing it with
wrong values, refused as one UsageError naming the value, with nothing left on disk."""

import numpy as np
import pytest
from conftest import DATA_DIR

import anomaly_toolbox as atb
from anomaly_toolbox.errors import UsageError


@pytest.mark.parametrize("latent_dim", [10 ** 12, 2 ** 63])
def test_a_model_too_big_for_memory_is_refused_before_the_run_folder_is_written(
        tmp_path, latent_dim):
    """latent_dim=10**12 (zeros typed once too often) was TensorFlow's ResourceExhaustedError
    from deep in Keras (2**63 a ValueError), after run.json had claimed the folder for it: the
    same call with the typo fixed was then refused ("it holds a run with
    config.model.latent_dim ...")."""
    out = tmp_path / "runs" / "run"
    config = {"epochs": 1, "batch_size": 32, "precision": "float32",
              "model": {"latent_dim": latent_dim, "filters": [4, 8, 16]}}
    with pytest.raises(UsageError) as e:
        atb.fit("autoencoder", "mnist", 3, out, config=config, limit=30, data_dir=DATA_DIR,
                verbose=0)
    assert str(e.value) == f"invalid config: latent_dim: {latent_dim} (expected a value in 1..8192)"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", [np.zeros((1000, 28, 28), np.uint8), None, 3])
def test_score_folder_given_no_path_names_its_type_not_its_printout(saved_model, path):
    """An array (what score takes) was str()-ed and refused as "invalid input: '[[[0 0 0 ...'",
    some 600 characters of printout, under another argument's name; None as the folder 'None'."""
    detector = atb.load(saved_model)
    with pytest.raises(UsageError) as e:
        detector.score_folder(path)
    assert str(e.value) == (f"invalid path: {type(path).__name__!r} (expected a folder or image "
                            f"file's path (score(images) takes arrays))")
