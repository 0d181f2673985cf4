"""Under tf.distribute, every model's train_step is the single-device step: a mirrored run on two
logical CPU devices follows the one-device loss trajectory at the same global batch (tolerance
1e-3 relative or 2e-4 absolute per logged loss, 1e-3 in the relative norm of all weights: the
all-reduce sums in another order, and Adam's normalised steps turn such rounding into small
weight differences), with synchronised batch norm and the same noise, split between replicas."""

import json
import os
import subprocess
import sys

import pytest
from conftest import DATA_DIR

SCRIPT = r"""
import json, sys
import anomaly_toolbox
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from anomaly_toolbox import models
from anomaly_toolbox.data import load_splits
from anomaly_toolbox.data.preprocessing import train_dataset
splits = load_splits("mnist", 3, data_dir=sys.argv[2], limit=128)

def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        cls = models.get(sys.argv[1])
        model = cls(**{**cls.DEFAULTS, "latent_dim": 8, "filters": [4, 8, 16],
                       **({"d_z_units": 16, "d_units": 32} if sys.argv[1] == "egbad" else {})},
                    channels=1)
        model.compile()
    history = model.fit(train_dataset(splits.x_train, 32, 0, 0), epochs=2, verbose=0,
                        shuffle=False)
    return {"history": history.history, "replicas": strategy.num_replicas_in_sync,
            "weights": np.concatenate([w.ravel() for w in model.get_weights()])}

one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
drift = float(np.linalg.norm(one.pop("weights") - mirrored["weights"])
              / np.linalg.norm(mirrored.pop("weights")))
print(json.dumps({"one": one, "mirrored": mirrored, "weight_drift": drift}))
"""


@pytest.mark.parametrize("model_name", ["ganomaly", "egbad", "anogan", "autoencoder"])
def test_mirrored_on_two_cpu_devices_matches_one_device(model_name):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, model_name, DATA_DIR], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, mirrored = out["one"], out["mirrored"]
    assert one["replicas"] == 1 and mirrored["replicas"] == 2
    assert set(one["history"]) == set(mirrored["history"])
    for key, values in one["history"].items():
        assert mirrored["history"][key] == pytest.approx(values, rel=1e-3, abs=2e-4), key
    assert out["weight_drift"] < 1e-3
