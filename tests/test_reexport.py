"""`anomaly-toolbox export`: a bfloat16 run's best weights exported again computing in float32,
scored by a plain tf.saved_model.load client; bad arguments refused before anything is written."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA_DIR, score_in_fresh_process

from anomaly_toolbox.errors import UsageError


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    from anomaly_toolbox.run import training

    tmp = tmp_path_factory.mktemp("bf16")
    config = tmp / "tiny.json"
    config.write_text(json.dumps({"epochs": 1, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    training.fit("egbad", "mnist", 3, str(tmp / "run"), config=str(config), data_dir=DATA_DIR,
                 limit=200, verbose=0, precision="mixed_bfloat16")
    return tmp / "run"


def test_float32_export_of_a_bfloat16_run_scores_the_same_detector(bf16_run, tmp_path):
    import tensorflow as tf

    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.run import export

    out = tmp_path / "f32"
    export.reexport(str(bf16_run), str(out), "float32")
    _, meta = export.load(str(out))
    _, trained = export.load(str(bf16_run / "saved_model"))
    assert meta["config"]["precision"] == "float32"
    assert trained["config"]["precision"] == "mixed_bfloat16"
    assert {k: v for k, v in meta.items() if k not in ("config", "exported_from")} == {
        k: v for k, v in trained.items() if k != "config"}
    assert {**meta["config"], "precision": "mixed_bfloat16"} == trained["config"]
    assert float(tf.saved_model.load(str(out)).threshold) == pytest.approx(
        float(tf.saved_model.load(str(bf16_run / "saved_model")).threshold))
    x = load_splits("mnist", 3, data_dir=DATA_DIR, limit=200).x_test[:64]
    f32 = score_in_fresh_process(out, x, tmp_path)
    b16 = score_in_fresh_process(bf16_run / "saved_model", x, tmp_path)
    assert f32.dtype == np.float32 and not np.array_equal(f32, b16)  # computed differently...
    np.testing.assert_allclose(f32, b16, rtol=0.05)  # ...by the same weights (bf16 rounding)


def test_bad_arguments_are_refused_and_write_nothing(bf16_run, tmp_path):
    from anomaly_toolbox.run import export

    with pytest.raises(UsageError, match="invalid precision: 'fp8'"):
        export.reexport(str(bf16_run), str(tmp_path / "a"), "fp8")
    with pytest.raises(UsageError, match="invalid run_dir"):
        export.reexport(str(tmp_path), str(tmp_path / "b"), "float32")
    import shutil

    trimmed = tmp_path / "trimmed"  # a copied run without its checkpoints
    shutil.copytree(bf16_run, trimmed, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(UsageError, match="invalid run_dir.*checkpoints/best"):
        export.reexport(str(trimmed), str(tmp_path / "b"), "float32")
    shutil.rmtree(trimmed)
    (tmp_path / "c").mkdir()
    with pytest.raises(UsageError, match="invalid output_dir"):
        export.reexport(str(bf16_run), str(tmp_path / "c"), "float32")
    with pytest.raises(UsageError, match=r"invalid output_dir: .*saved_model/v2' \(expected a "
                                         r"folder outside any SavedModel \(.*saved_model is one"):
        export.reexport(str(bf16_run), str(bf16_run / "saved_model" / "v2"), "float32")
    assert not (bf16_run / "saved_model" / "v2").exists()
    with pytest.raises(UsageError, match=r"invalid output_dir: .*checkpoints/f32' \(expected a "
                                         r"folder outside any run's checkpoints"):
        export.reexport(str(bf16_run), str(bf16_run / "checkpoints" / "f32"), "float32")
    assert not (bf16_run / "checkpoints" / "f32").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"] and not any((tmp_path / "c").iterdir())
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox", "export",
                           f"--run_dir={bf16_run}", "--precision=float64",
                           f"--output_dir={tmp_path / 'd'}"], capture_output=True, text=True)
    assert proc.returncode == 2 and "precision" in proc.stderr and "float64" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_a_damaged_best_checkpoint_is_named_and_nothing_is_written(bf16_run, tmp_path):
    import glob
    import shutil

    from anomaly_toolbox.errors import DataError
    from anomaly_toolbox.run import export

    run = tmp_path / "run"
    shutil.copytree(bf16_run, run)
    index = glob.glob(str(run / "checkpoints" / "best" / "*.index"))[0]
    with open(index, "wb") as f:
        f.write(b"junk")
    with pytest.raises(DataError, match=f"damaged checkpoint {index} .*saved_model/ still scores"):
        export.reexport(str(run), str(tmp_path / "out"), "float32")
    assert not (tmp_path / "out").exists()


def test_auto_is_trains_auto_for_the_runs_model(tiny_run, tmp_path, monkeypatch):
    """export --precision=auto always gave float32: it resolved auto without the model."""
    from anomaly_toolbox.models import precision
    from anomaly_toolbox.run import export

    monkeypatch.setattr(precision, "has_bfloat16", lambda: True)  # as on AVX512_BF16 / AMX
    run_dir, _ = tiny_run("ganomaly")
    export.reexport(str(run_dir), str(tmp_path / "auto"), "auto")
    assert export.load(str(tmp_path / "auto"))[1]["config"]["precision"] == "mixed_bfloat16"
