"""The validation-only sweep restores a finished run's selected weights (a run trained through
the user's command, as the sweep's users have one)."""

import json
import os
import subprocess
import sys

import pytest

from anomaly_toolbox.errors import UsageError
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
    # once scored under their own label (w_con=-1 as given) or a shape-mismatch traceback
    with pytest.raises(UsageError, match=r"invalid values: w_con: -1 \(expected a value >= 0"):
        sweep(str(tmp_path / "run"), "w_con", [-1], DATA_DIR)
    with pytest.raises(UsageError, match="invalid key: 'latent_dim' .*weights do not depend on"):
        sweep(str(tmp_path / "run"), "latent_dim", [4], DATA_DIR)


@pytest.mark.parametrize("flag, message", [
    ("--values=1,abc", "invalid values: '1,abc' (expected JSON values"),  # a JSONDecodeError
    ("--max_images=-5", "invalid max_images: -5"),  # scored all but the last 5 images
    ("--max_images=0", "invalid max_images: 0"),  # an IndexError in the metrics
    ("--output=OUT", "invalid output: 'OUT' (expected a file path, not a folder)"),
])
def test_sweep_flags_are_checked_before_tensorflow_loads(tmp_path, flag, message):
    from tests.test_cli import without_tensorflow

    flag, message = (s.replace("OUT", str(tmp_path)) for s in (flag, message))
    env = {**os.environ, **without_tensorflow(tmp_path / "poison")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.sweep", f"--run_dir={tmp_path}",
                           flag], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1
