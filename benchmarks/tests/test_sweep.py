"""The validation-only sweep restores a finished run's selected weights (a run trained through
the user's command, as the sweep's users have one)."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.tests.conftest import DATA_DIR, TINY


def test_validation_sweep_restores_the_selected_weights(tmp_path):
    from benchmarks.sweep import sweep

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"epochs": 2, "batch_size": 32, "model": TINY}))
    train = subprocess.run(
        [sys.executable, "-m", "anomaly_toolbox.train", "--model=ganomaly", "--dataset=mnist",
         "--anomalous_class=1", f"--config={config}", "--limit=300", f"--data_dir={DATA_DIR}",
         f"--output_dir={tmp_path / 'run'}", "--verbose=0"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert train.returncode == 0, train.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    rows = sweep(str(tmp_path / "run"), "w_con", [1.0, 50.0], DATA_DIR)  # a training-only key
    assert [r["w_con"] for r in rows] == [1.0, 50.0] and rows[0]["images"] == 300
    for r in rows:
        assert r["auprc"] == pytest.approx(results["validation"]["auprc"], abs=1e-9)
