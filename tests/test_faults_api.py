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


def test_score_folder_takes_the_input_range_its_advice_names(saved_model, mnist, tmp_path):
    """A .npy of floats in 0..1 was refused with "pass --input_range=0..1", a flag score_folder
    had no parameter for: there was no way to score the file through the API."""
    detector = atb.load(saved_model)
    np.save(tmp_path / "x.npy", mnist.x_test[:4] / 255.0)
    with pytest.raises(UsageError, match=r"pass input_range=\"0\.\.1\" to have them rescaled"):
        detector.score_folder(tmp_path / "x.npy")
    ids, scores = detector.score_folder(tmp_path / "x.npy", input_range="0..1")
    assert ids == [0, 1, 2, 3]
    np.testing.assert_allclose(scores, detector.score(mnist.x_test[:4]), rtol=1e-5, atol=1e-6)
