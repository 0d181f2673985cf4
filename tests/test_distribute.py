"""Under tf.distribute, every model's train_step is the single-device step: a mirrored run on two
logical CPU devices follows the one-device loss trajectory at the same global batch (tolerance
1e-3 relative or 2e-4 absolute per logged loss, 1e-3 in the relative norm of all weights: the
all-reduce sums in another order, and Adam's normalised steps turn such rounding into small
weight differences), with synchronised batch norm and the same noise, split between replicas."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

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

def run(strategy, name):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        cls = models.get(name)
        model = cls(**{**cls.DEFAULTS, "latent_dim": 8, "filters": [4, 8, 16],
                       **({"d_z_units": 16, "d_units": 32} if name == "egbad" else {}),
                       **({"gan_epochs": 1} if name == "fanogan" else {})},  # both stages
                    channels=1)
        model.compile()
    history = model.fit(train_dataset(splits.x_train, 32, 0, 0), epochs=2, verbose=0,
                        shuffle=False, callbacks=getattr(model, "fit_callbacks", list)())
    return {"history": history.history, "replicas": strategy.num_replicas_in_sync,
            "weights": np.concatenate([w.ravel() for w in model.get_weights()])}

out = {}
# one strategy of each kind for all models: several MirroredStrategy objects in one process
# would reuse collective-op keys
single, replicated = (tf.distribute.OneDeviceStrategy("/cpu:0"),
                      tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
for name in sys.argv[1].split(","):
    one = run(single, name)
    mirrored = run(replicated, name)
    drift = float(np.linalg.norm(one.pop("weights") - mirrored["weights"])
                  / np.linalg.norm(mirrored.pop("weights")))
    out[name] = {"one": one, "mirrored": mirrored, "weight_drift": drift}
print(json.dumps(out))
"""
MODELS = ["ganomaly", "egbad", "anogan", "autoencoder", "fanogan"]


@pytest.fixture(scope="module")
def trajectories():
    """Every model in one child process: the logical devices are set once, TF imported once."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(MODELS), DATA_DIR], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model_name", MODELS)
def test_mirrored_on_two_cpu_devices_matches_one_device(model_name, trajectories):
    out = trajectories[model_name]
    one, mirrored = out["one"], out["mirrored"]
    assert one["replicas"] == 1 and mirrored["replicas"] == 2
    assert set(one["history"]) == set(mirrored["history"])
    for key, values in one["history"].items():
        assert mirrored["history"][key] == pytest.approx(values, rel=1e-3, abs=2e-4), key
    assert out["weight_drift"] < 1e-3


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(tmp_path, config, children):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        procs.append(children(
            [sys.executable, "-m", "anomaly_toolbox.train", "--model=autoencoder",
             "--dataset=mnist", "--anomalous_class=3", f"--config={config}", "--limit=128",
             f"--data_dir={DATA_DIR}", f"--output_dir={tmp_path / f'run{index}'}", "--verbose=2",
             "--strategy=multi_worker"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    deadline = time.time() + 600
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):  # its peer would wait for it forever
            for p in procs:
                p.kill()
        time.sleep(0.2)
    return procs, [p.communicate(timeout=60) for p in procs]


def test_two_local_workers_train_to_identical_weights_and_only_the_chief_writes(tmp_path, children):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"epochs": 1, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    procs, outs = _two_workers(tmp_path, config, children)
    if any("already in use" in err for _, err in outs):  # a free port taken in between: once more
        shutil.rmtree(tmp_path / "run0", ignore_errors=True)
        procs, outs = _two_workers(tmp_path, config, children)
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    chief = json.loads((tmp_path / "run0" / "results.json").read_text())
    assert chief["distribution"]["strategy"] == "multi_worker"
    assert chief["distribution"]["replicas"] == 2
    assert not (tmp_path / "run1").exists()  # a worker writes into a temporary folder only
    sums = [line.split()[-1] for out, _ in outs for line in out.splitlines()
            if line.startswith("final weights sha256")]
    assert len(sums) == 2 and sums[0] == sums[1] == chief["distribution"]["weights_sha256"]


def test_a_bad_strategy_flag_exits_2_and_writes_nothing(tmp_path):
    """The command's side of the contract, once; the checks themselves: the next test."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.train", "--model=autoencoder",
                           f"--data_dir={DATA_DIR}", f"--output_dir={out}", "--limit=64",
                           "--strategy=ring"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid strategy: 'ring'" in proc.stderr, proc.stderr[-1000:]
    assert not out.exists()


@pytest.mark.parametrize("strategy, cpu_devices, tf_config, message", [
    ("ring", None, None, "invalid strategy: 'ring'"),
    ("default", 2, None, "invalid cpu_devices: 2 (expected only with --strategy=mirrored)"),
    ("mirrored", 0, None, "invalid cpu_devices: 0 (expected a positive number"),
    ("multi_worker", None, "{not json", "invalid TF_CONFIG"),
    ("multi_worker", None, json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                       "task": {"type": "worker", "index": 3}}), "invalid TF_CONFIG"),
    # TensorFlow's own checks ended these in a traceback (`task_type 'chief' not found`, ...)
    ("multi_worker", None, json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                       "task": {"type": "chief", "index": 0}}),
     "invalid TF_CONFIG task type: 'chief' (expected one of its cluster's: worker)"),
    *[("multi_worker", None, json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                         "task": {"type": "worker", "index": index}}),
       f"invalid TF_CONFIG task index: {index!r} (expected an integer in 0..1, a position in "
       "cluster['worker'])") for index in (1.5, "0", True, -1)],
    ("multi_worker", None, json.dumps({"cluster": {"chief": ["127.0.0.1:1", "127.0.0.1:2"]},
                                       "task": {"type": "chief", "index": 0}}),
     "invalid TF_CONFIG: "),
])
def test_bad_distribution_arguments_are_refused_before_anything_is_written(
        tmp_path, monkeypatch, strategy, cpu_devices, tf_config, message):
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.run import training

    if tf_config:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=re.escape(message)):
        training.fit("autoencoder", "mnist", 3, str(out), epochs=1, data_dir=DATA_DIR, limit=64,
                     strategy=strategy, cpu_devices=cpu_devices)
    assert not out.exists()


@pytest.mark.parametrize("cluster, writer", [
    ({"chief": ["h:0"], "worker": ["h:1", "h:2"]}, ("chief", 0)),
    ({"worker": ["h:1", "h:2"]}, ("worker", 0)),
])
def test_exactly_one_task_of_a_cluster_writes_the_run_folder(monkeypatch, cluster, writer):
    """The chief when the cluster has one, else worker 0; the chief and worker 0 both wrote."""
    from anomaly_toolbox.run import distribute

    writers = []
    for kind, hosts in cluster.items():
        for index in range(len(hosts)):
            monkeypatch.setenv("TF_CONFIG", json.dumps(
                {"cluster": cluster, "task": {"type": kind, "index": index}}))
            if distribute.writes_run_folder(*distribute.cluster_spec()):
                writers.append((kind, index))
    assert writers == [writer]


def test_mirrored_run_through_the_train_command_records_its_strategy(tmp_path, children):
    """The whole run (fit, selection, export, resume) under --strategy=mirrored --cpu_devices=2,
    and results.json says how it ran (the one-device comparison: the trajectory test above).
    The autoencoder: the plumbing is the same for every model, and it runs in 0.65x the time."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"epochs": 2, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    def command(name, *flags):
        return [sys.executable, "-m", "anomaly_toolbox.train", "--model=autoencoder",
                "--dataset=mnist", "--anomalous_class=3", f"--config={config}", "--limit=256",
                f"--data_dir={DATA_DIR}", f"--output_dir={tmp_path / name}", "--verbose=2",
                *flags]

    mirrored = ["--strategy=mirrored", "--cpu_devices=2"]
    # the uninterrupted run and the one killed after its first epoch's commit share nothing:
    # they run side by side; the killed one resumes and must end where the other ends
    log = open(tmp_path / "mirrored.err", "w")
    uninterrupted = children(command("mirrored", *mirrored), stdout=subprocess.DEVNULL, stderr=log)
    killed = children(command("killed", *mirrored), stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    marker, deadline = tmp_path / "killed" / "checkpoints" / "last" / "checkpoint", time.time() + 300
    while not marker.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    resumed = subprocess.run(command("killed", *mirrored), capture_output=True, text=True)
    assert resumed.returncode == 0 and "Resuming" in resumed.stdout, resumed.stderr[-2000:]
    uninterrupted.wait(timeout=600)
    log.close()
    assert uninterrupted.returncode == 0, (tmp_path / "mirrored.err").read_text()[-2000:]
    runs = {"mirrored": json.loads((tmp_path / "mirrored" / "results.json").read_text())}
    again = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert again["test"] == runs["mirrored"]["test"]
    assert runs["mirrored"]["distribution"] | {"weights_sha256": None} == {
        "strategy": "mirrored", "replicas": 2, "weights_sha256": None}
    assert again["distribution"] == runs["mirrored"]["distribution"]


def _tiny_command(tmp_path, output, *flags, limit=300):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"epochs": 1, "batch_size": 32, "precision": "float32",
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    return [sys.executable, "-m", "anomaly_toolbox.train", "--model=autoencoder",
            "--dataset=mnist", "--anomalous_class=1", f"--config={config}", f"--limit={limit}",
            f"--data_dir={DATA_DIR}", f"--output_dir={tmp_path / output}", "--verbose=2", *flags]


@pytest.mark.parametrize("dataset", ["mnist", "folder"])
def test_a_global_batch_the_replicas_cannot_share_evenly_is_refused_before_anything_is_written(
        tmp_path, dataset):
    """32 on 3 replicas is 11, 11, 10: Keras' fit averaged the replicas' first batches to build
    the model and ended in an AddN traceback, after run.json, logs/ and .lock were written. A
    folder dataset got as far as "invalid cpu_devices: 3 (expected set before TensorFlow
    starts ...)": its images were decoded with TensorFlow before the devices were set."""
    command = _tiny_command(tmp_path, "out", "--strategy=mirrored", "--cpu_devices=3")
    if dataset == "folder":
        from PIL import Image

        (tmp_path / "images" / "train").mkdir(parents=True)
        for i in range(4):
            Image.new("L", (28, 28), 60 * i).save(tmp_path / "images" / "train" / f"{i}.png")
        command = [f"--dataset=folder:{tmp_path / 'images'}" if a == "--dataset=mnist" else a
                   for a in command if not a.startswith(("--anomalous_class", "--limit"))]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: invalid batch_size: 32 (expected a multiple of the 3 replicas of "
        "--strategy=mirrored --cpu_devices=3)"), proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_an_epoch_whose_last_batch_cannot_reach_every_replica_trains(tmp_path):
    """33 train images in batches of 32 end in a batch of 1, which left the second replica no
    image (a convolution over an empty batch failed); the epoch is cut to 32 images: 1 step."""
    proc = subprocess.run(_tiny_command(tmp_path, "out", "--strategy=mirrored",
                                        "--cpu_devices=2", limit=33),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^1/1 ", proc.stdout, re.M), proc.stdout[-2000:]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["distribution"][
        "replicas"] == 2


def test_fewer_training_images_than_replicas_is_refused_before_anything_is_written(tmp_path):
    """2 folder images leave 1 to train on (1 is held out): the epoch, cut to a multiple of the
    2 replicas, was empty, and Keras' fit ended in a StopIteration traceback after run.json."""
    from PIL import Image

    (tmp_path / "images" / "train").mkdir(parents=True)
    for i in range(2):
        Image.new("L", (28, 28), 90 * i).save(tmp_path / "images" / "train" / f"{i}.png")
    command = [f"--dataset=folder:{tmp_path / 'images'}" if a == "--dataset=mnist" else a
               for a in _tiny_command(tmp_path, "out", "--strategy=mirrored", "--cpu_devices=2")
               if not a.startswith(("--anomalous_class", "--limit"))]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: invalid dataset: 'folder:{tmp_path / 'images'}' (expected at least 2 normal "
        "training images, one per replica of --strategy=mirrored --cpu_devices=2 (the split "
        "holds 1))"), proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()
