"""`--strategy`: one device (default), all local GPUs or N logical CPU devices (mirrored), or
several hosts (multi_worker, cluster from TF_CONFIG). The models' train steps are replica-aware
(models/replicas.py); this module builds the strategy and says who writes files (the chief)."""

import json
import os

import tensorflow as tf

from anomaly_toolbox.errors import UsageError, check_integer

STRATEGIES = ("default", "mirrored", "multi_worker")
TASK_TYPES = ("chief", "worker")  # the tasks that train under MultiWorkerMirroredStrategy


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


def check_train_images(count, replicas, strategy, cpu_devices, dataset, limit):
    """Each replica needs an image: the epoch is cut to a multiple of the replicas, so fewer
    images than replicas left it empty (a StopIteration traceback from Keras' fit)."""
    if count < replicas:
        flags = f"--strategy={strategy}" + (f" --cpu_devices={cpu_devices}" if cpu_devices else "")
        argument, value = ("limit", limit) if limit else ("dataset", dataset)
        raise UsageError(argument, value, f"at least {replicas} normal training images, one per "
                         f"replica of {flags} (the split holds {count})")


def cluster_spec():
    """(cluster, task type, task index) from TF_CONFIG, checked: TensorFlow's own checks end
    in a traceback once the strategy starts."""
    text = os.environ.get("TF_CONFIG")
    expected = ('JSON {"cluster": {"worker": ["host:port", ...], optionally "chief": '
                '["host:port"]}, "task": {"type": "worker" or "chief", "index": i}}')
    try:
        spec = json.loads(text or "")
        cluster, kind, index = spec["cluster"], spec["task"]["type"], spec["task"]["index"]
        assert isinstance(cluster, dict) and cluster and set(cluster) <= set(TASK_TYPES)
        assert all(isinstance(hosts, list) and hosts and all(
            isinstance(host, str) and ":" in host for host in hosts) for hosts in cluster.values())
        assert len(cluster.get("chief", [])) <= 1
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise UsageError("TF_CONFIG", text, expected) from e
    if not isinstance(kind, str) or kind not in cluster:
        raise UsageError("TF_CONFIG task type", kind, f"one of its cluster's: {', '.join(cluster)}")
    check_integer("TF_CONFIG task index", index, 0, len(cluster[kind]) - 1,
                  f"an integer in 0..{len(cluster[kind]) - 1}, a position in cluster[{kind!r}]")
    return cluster, kind, index


def writes_run_folder(cluster, kind, index):
    """Exactly one task writes the run folder, the one TensorFlow makes chief: the chief task
    if the cluster has one, else worker 0 (never both: they would race on the same files)."""
    return kind == "chief" or ("chief" not in cluster and index == 0)


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
    return tf.distribute.MultiWorkerMirroredStrategy(), writes_run_folder(*cluster_spec())
