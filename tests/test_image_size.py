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
    for written in ("64", 64.0):  # 64.0 was taken as 64, where epochs 10.0 is refused
        path.write_text(json.dumps({"image_size": written}))
        with pytest.raises(UsageError, match=f"invalid config .*: image_size: {written!r}"):
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


def test_mnist_at_64_pads_then_resizes_in_training_and_in_the_saved_model(tmp_path, images):
    import tensorflow as tf
    from conftest import DATA_DIR

    from anomaly_toolbox.data.preprocessing import to_model_input
    from anomaly_toolbox.run import training

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"epochs": 1, "batch_size": 16, "model": TINY}))
    training.fit("autoencoder", "mnist", 4, str(tmp_path / "run"), config=str(path), limit=32,
                 data_dir=DATA_DIR, verbose=0, image_size=64)
    loaded = tf.saved_model.load(str(tmp_path / "run" / "saved_model"))
    meta = json.loads(loaded.metadata.numpy().decode())
    assert meta["image_size"] == 64 and meta["padded"] is True
    x28 = images[0][:4]
    x64 = ((to_model_input(x28, 64).numpy() + 1) * 127.5).round().astype(np.uint8)
    np.testing.assert_allclose(loaded.score(x28).numpy(), loaded.score(x64).numpy(), rtol=1e-6)
    assert loaded.anomaly_map(x28).shape == (4, 28, 28)
    assert loaded.anomaly_map(x64).shape == (4, 64, 64)
