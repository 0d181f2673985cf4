"""`--strategy`: one device (default), all local GPUs or N logical CPU devices (mirrored), or
several hosts (multi_worker, cluster from TF_CONFIG). The models' train steps are replica-aware
(models/replicas.py); this module builds the strategy and says who writes files (the chief)."""

import json
import os

import tensorflow as tf

from anomaly_toolbox.errors import UsageError

STRATEGIES = ("default", "mirrored", "multi_worker")


def check(strategy, cpu_devices):
    """Every mistake named before anything runs or is written."""
    if strategy not in STRATEGIES:
        raise UsageError("strategy", strategy, f"one of {', '.join(STRATEGIES)}")
    if cpu_devices is not None:
        if strategy != "mirrored":
            raise UsageError("cpu_devices", cpu_devices, "only with --strategy=mirrored")
        if isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or cpu_devices < 1:
            raise UsageError("cpu_devices", cpu_devices, "a positive number of CPU devices")
        if tf.config.list_physical_devices("GPU"):
            raise UsageError("cpu_devices", cpu_devices, "no GPU visible: mirrored uses the "
                             "GPUs; leave --cpu_devices out, or hide them (CUDA_VISIBLE_DEVICES=)")
    if strategy == "multi_worker":
        cluster_spec()


def check_batch(batch_size, replicas, strategy, cpu_devices):
    """The global batch must split evenly: Keras' fit builds the model from the mean of the
    replicas' first batches, which fails with a traceback when their sizes differ."""
    if batch_size % replicas:
        flags = f"--strategy={strategy}" + (f" --cpu_devices={cpu_devices}" if cpu_devices else "")
        raise UsageError("batch_size", batch_size,
                         f"a multiple of the {replicas} replicas of {flags}")


def cluster_spec():
    """(workers, this task's index) from TF_CONFIG, checked."""
    text = os.environ.get("TF_CONFIG")
    expected = ('JSON {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                '"index": i}}')
    try:
        spec = json.loads(text or "")
        workers = spec["cluster"]["worker"]
        task = spec["task"]
        assert isinstance(workers, list) and workers and all(":" in str(w) for w in workers)
        assert task["type"] in ("worker", "chief") and 0 <= int(task["index"]) < len(workers)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise UsageError("TF_CONFIG", text, expected) from e
    return len(workers), int(task["index"])


def make(strategy, cpu_devices=None):
    """(tf.distribute strategy, whether this process writes the run's files)."""
    if strategy == "default":
        return tf.distribute.get_strategy(), True
    if strategy == "mirrored":
        devices = None
        if cpu_devices:
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
            except RuntimeError as e:  # TensorFlow already ran: devices are fixed
                raise UsageError("cpu_devices", cpu_devices, "set before TensorFlow starts "
                                 "(a fresh process, as the train command is)") from e
            devices = [f"/cpu:{i}" for i in range(cpu_devices)]
        return tf.distribute.MirroredStrategy(devices), True
    _, index = cluster_spec()
    return tf.distribute.MultiWorkerMirroredStrategy(), index == 0
