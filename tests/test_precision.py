"""--precision: bfloat16 compute with float32 losses and scores; auto stays float32 until the
quality gate; float16 needs a GPU."""

import json

import numpy as np
import pytest
from conftest import DATA_DIR, score_in_fresh_process, tiny_model

from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.models import precision


def test_resolve_names_bad_values_and_picks_bfloat16_only_for_verified_models(monkeypatch):
    with pytest.raises(UsageError, match="invalid precision: 'bf16'"):
        precision.resolve("bf16")
    with pytest.raises(UsageError, match="invalid precision: 'mixed_float16'.*GPU"):
        precision.resolve("mixed_float16")
    monkeypatch.setattr(precision, "has_bfloat16", lambda: True)
    assert precision.BFLOAT16_QUALITY_VERIFIED == ("ganomaly",)
    assert precision.resolve("auto", "ganomaly") == "mixed_bfloat16"
    for other in ("egbad", "anogan", "autoencoder", "fanogan", None):  # failed it, or never in it
        assert precision.resolve("auto", other) == "float32"
    assert precision.resolve("float32", "ganomaly") == "float32"
    monkeypatch.setattr(precision, "has_bfloat16", lambda: False)
    assert precision.resolve("auto", "ganomaly") == "float32"


def test_benchmark_profiles_pin_float32_so_cells_compare_across_machines():
    import glob
    import os

    from conftest import REPO

    for path in glob.glob(os.path.join(REPO, "experiments", "*.json")):
        with open(path) as f:
            wanted = json.load(f).get("precision")
        name = os.path.basename(path)
        if "_folder_" in name:
            assert wanted is None, name  # a user's own images: auto
        else:
            assert wanted == ("mixed_bfloat16" if "_bf16" in name else "float32"), name


def test_bf16_flag_is_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert precision.has_bfloat16(str(info))
    info.write_text("flags\t: fpu avx2 avx512f\n")
    assert not precision.has_bfloat16(str(info))


def test_bfloat16_without_hardware_support_warns_once(monkeypatch, capsys):
    """It ran emulated, slower than float32, without a word."""
    precision._warn_emulated.cache_clear()
    monkeypatch.setattr(precision, "has_bfloat16", lambda: True)
    assert precision.resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(precision, "has_bfloat16", lambda: False)
    assert precision.resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert precision.resolve("mixed_bfloat16", "egbad") == "mixed_bfloat16"
    err = capsys.readouterr().err
    assert err.count("warning: mixed_bfloat16 on hardware without bfloat16") == 1, err
    precision._warn_emulated.cache_clear()


@pytest.mark.parametrize("name", ["ganomaly", "egbad", "anogan", "autoencoder", "fanogan"])
def test_models_compute_in_bfloat16_and_hand_float32_to_losses_and_scores(name, batch):
    with precision.policy("mixed_bfloat16"):
        model = tiny_model(name, **({"d_z_units": 16, "d_units": 32} if name == "egbad" else {}))
    import keras

    assert keras.config.dtype_policy().name == "float32"  # restored after building
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    losses = model.train_step(batch[:16])
    assert all(v.dtype == "float32" and np.isfinite(float(v)) for v in losses.values())
    scores = model.score(batch[:8])
    assert scores.dtype == "float32" and np.all(np.isfinite(scores.numpy()))


def test_a_bfloat16_run_records_its_precision_and_exports_float32_scores(tmp_path, mnist):
    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.run import training

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"epochs": 1, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    results = training.fit("ganomaly", "mnist", 3, str(tmp_path / "run"), config=str(config),
                           data_dir=DATA_DIR, limit=200, verbose=0, precision="mixed_bfloat16")
    assert results["config"]["precision"] == "mixed_bfloat16"
    splits = load_splits("mnist", 3, data_dir=DATA_DIR, limit=200)
    fresh = score_in_fresh_process(tmp_path / "run" / "saved_model", splits.x_test, tmp_path)
    assert fresh.dtype == np.float32
    stored = np.load(tmp_path / "run" / "scores.npz")["test_scores"]
    np.testing.assert_allclose(fresh, stored, rtol=1e-3)
