"""One training run: splits -> fit epoch by epoch -> validation model selection -> test -> export.

Test data is scored once, after the best-validation-AUPRC weights are restored. Every epoch
ends with a checkpoint, so re-running the same command on the same output directory resumes.
"""

import io
import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox import config as config_lib
from anomaly_toolbox import datasets, export, figures, metrics, protocols, registry
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.files import ensure_writable_dir, write_atomic, write_json
from anomaly_toolbox.preprocessing import IMAGE_SIZE, eval_dataset, train_dataset


class DivergenceError(RuntimeError):
    pass


def score_images(model, images, batch_size=256):
    """Raw scores of uint8 images (N, 28, 28) in order, in inference mode."""
    fn = getattr(model, "_score_fn", None)
    if fn is None:
        fn = model._score_fn = tf.function(
            model.score, input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, None])])
    return np.concatenate([fn(batch).numpy() for batch in eval_dataset(images, batch_size)])


def versions():
    import sklearn

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus"}


def _check_identity(output_dir, identity):
    """A run directory belongs to one (model, data, config, seeds); refuse to mix runs."""
    path = os.path.join(output_dir, "run.json")
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous != identity:
            diff = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
            raise UsageError("output_dir", output_dir,
                             f"an empty directory or one holding this same run; it holds a run "
                             f"that differs in {', '.join(diff)}")
    else:
        write_json(path, identity)


def _log_scalars(writer, epoch, values):
    with writer.as_default(step=epoch):
        for key, value in values.items():
            tf.summary.scalar(key, value)
    writer.flush()


def run(model, dataset, anomalous_class, output_dir, protocol="pooled", config=None,
        epochs=None, batch_size=None, train_seed=0, split_seed=0, data_dir=None, verbose=2,
        deterministic=True, limit=None):
    started = time.time()
    model_cls = registry.get(model)
    cfg = config_lib.resolve(model_cls, config, epochs, batch_size)
    if dataset not in datasets.DATASETS:
        raise UsageError("dataset", dataset, f"one of {', '.join(datasets.DATASETS)}")
    if protocol not in protocols.PROTOCOLS:
        raise UsageError("protocol", protocol, f"one of {', '.join(protocols.PROTOCOLS)}")
    ensure_writable_dir(output_dir)
    raw = datasets.load(dataset, data_dir)
    splits = protocols.make_splits(raw, anomalous_class, protocol, split_seed)
    if limit is not None:
        if limit <= 0:
            raise UsageError("limit", limit, "a positive number of images per split")
        splits = splits.limited(limit)
    identity = {"model": model, "dataset": dataset, "anomalous_class": int(anomalous_class),
                "protocol": protocol, "train_seed": train_seed, "split_seed": split_seed,
                "limit": limit, "config": cfg}
    _check_identity(output_dir, identity)

    keras.utils.set_random_seed(train_seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    net = model_cls(**cfg["model"], channels=1)
    net.compile()
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    best_var = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
    best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    train_time = tf.Variable(0.0, dtype=tf.float64, trainable=False)  # summed over resumes
    ckpt = tf.train.Checkpoint(model=net, epoch=epoch_var, best_auprc=best_var,
                               best_epoch=best_epoch, train_seconds=train_time)
    last = tf.train.CheckpointManager(ckpt, os.path.join(output_dir, "checkpoints", "last"), 1)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=net),
                                      os.path.join(output_dir, "checkpoints", "best"), 1)
    if last.latest_checkpoint:
        ckpt.restore(last.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resuming {output_dir} after epoch {int(epoch_var.numpy())}", flush=True)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs"))
    bs = cfg["batch_size"]
    for epoch in range(int(epoch_var.numpy()), cfg["epochs"]):
        t0 = time.time()
        history = net.fit(train_dataset(splits.x_train, bs, train_seed, epoch),
                          initial_epoch=epoch, epochs=epoch + 1, verbose=verbose,
                          shuffle=False)  # the dataset is already shuffled per epoch
        train_time.assign_add(time.time() - t0)
        losses = {k: float(v[-1]) for k, v in history.history.items()}
        if not all(np.isfinite(v) for v in losses.values()):
            raise DivergenceError(
                f"{model}: loss became NaN/inf in epoch {epoch + 1} ({losses}); the best "
                f"checkpoint so far is kept in {best.directory}")
        val = metrics.ranking_metrics(score_images(net, splits.x_val), splits.y_val)
        improved = val["auprc"] > best_var.numpy()
        if improved:
            best_var.assign(val["auprc"])
            best_epoch.assign(epoch + 1)
            best.save()
        epoch_var.assign(epoch + 1)
        last.save()
        _log_scalars(writer, epoch + 1, {**losses, **{f"val/{k}": v for k, v in val.items()}})
        print(f"epoch {epoch + 1}/{cfg['epochs']}  val AUPRC {val['auprc']:.4f}  "
              f"AUROC {val['auroc']:.4f}{'  (best)' if improved else ''}  "
              f"{time.time() - t0:.0f}s", flush=True)

    tf.train.Checkpoint(model=net).restore(best.latest_checkpoint).assert_existing_objects_matched()
    t0 = time.time()
    val_scores = score_images(net, splits.x_val)
    threshold = metrics.best_f1_threshold(val_scores, splits.y_val)
    val_metrics = metrics.evaluate(val_scores, splits.y_val, threshold)
    test_scores = score_images(net, splits.x_test)
    test_metrics = metrics.evaluate(test_scores, splits.y_test, threshold)
    eval_time = time.time() - t0
    _log_scalars(writer, cfg["epochs"], {f"test/{k}": v for k, v in test_metrics.items()})
    pngs = figures.write_all(output_dir, net, splits.x_test, test_scores, splits.y_test, threshold)
    with writer.as_default(step=cfg["epochs"]):
        for name, png in pngs.items():
            tf.summary.image(f"test/{name}", tf.image.decode_png(png)[tf.newaxis])
    export.save(net, os.path.join(output_dir, "saved_model"), channels=1, threshold=threshold,
                metadata={"model": model, "dataset": dataset, "channels": 1,
                          "anomalous_class": int(anomalous_class), "protocol": protocol,
                          "config": cfg})
    buffer = io.BytesIO()
    np.savez(buffer, val_scores=val_scores, val_labels=splits.y_val, test_scores=test_scores,
             test_labels=splits.y_test)
    write_atomic(os.path.join(output_dir, "scores.npz"), buffer.getvalue(), "wb")
    results = {**identity, "data_source": raw.source, "splits": splits.counts(),
               "selected_epoch": int(best_epoch.numpy()),
               "validation": val_metrics, "test": test_metrics,
               "wall_time_s": {"train": round(float(train_time.numpy()), 1), "evaluate": round(eval_time, 1),
                               "total_this_invocation": round(time.time() - started, 1)},
               "versions": versions()}
    write_json(os.path.join(output_dir, "results.json"), results)
    print(f"test AUPRC {test_metrics['auprc']:.4f}  AUROC {test_metrics['auroc']:.4f}  "
          f"F1 {test_metrics['f1']:.4f} (val threshold {threshold:.4g})", flush=True)
    return results
