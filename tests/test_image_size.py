"""--image_size: one stride-2 block per doubling in every network, checked values, 32 unchanged."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY

from anomaly_toolbox import config
from anomaly_toolbox import models as registry
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.models import blocks


def test_widths_double_once_per_doubling():
    assert blocks.widths([4, 8, 16]) == [4, 8, 16]
    assert blocks.widths([4, 8, 16], 64) == [4, 8, 16, 32]
    assert blocks.widths([4, 8, 16], 256) == [4, 8, 16, 32, 64, 128]


@pytest.mark.parametrize("name", registry.names())
def test_every_model_runs_at_64_rgb(name):
    import tensorflow as tf

    cls = registry.get(name)
    overrides = {"search_steps": 2} if "search_steps" in cls.DEFAULTS else {}
    model = cls(**{**cls.DEFAULTS, **{k: v for k, v in TINY.items() if k in cls.DEFAULTS},
                   **overrides}, channels=3, image_size=64)
    model.compile()
    x = tf.random.uniform([2, 64, 64, 3], -1.0, 1.0, seed=1)
    assert model.score(x).shape == (2,)
    assert model.reconstruct(x).shape == (2, 64, 64, 3)
    losses = model.train_step(x)
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_image_size_from_file_and_flag(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"image_size": 64}))
    cls = registry.get("ganomaly")
    assert config.resolve(cls)["image_size"] == 32
    assert config.resolve(cls, str(path))["image_size"] == 64
    assert config.resolve(cls, str(path), image_size=128)["image_size"] == 128
    with pytest.raises(UsageError, match=r"invalid image_size: 48 \(expected one of 32, 64, 128, 256"):
        config.resolve(cls, image_size=48)
    path.write_text(json.dumps({"image_size": "64"}))
    with pytest.raises(UsageError, match="invalid config .*: image_size: '64'"):
        config.resolve(cls, str(path))


def test_bad_image_size_flag_exits_2_writing_nothing(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.train", "--image_size=100",
                           f"--output_dir={out}", "--epochs=1"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: invalid image_size: 100 (expected one of 32, 64, 128, 256: the side of the "
        "square images the model trains at)"]
    assert not out.exists()
