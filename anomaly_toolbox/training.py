"""One training run: splits -> fit epoch by epoch -> validation model selection -> test -> export.

Test data is scored once, after the best-validation-AUPRC weights are restored. Every epoch
ends with a checkpoint, so re-running the same command on the same output directory resumes.
"""

import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox import config as config_lib
from anomaly_toolbox import datasets, export, figures, folders, metrics, protocols, registry
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.files import ensure_writable_dir, write_json, write_npz
from anomaly_toolbox.preprocessing import IMAGE_SIZE, eval_dataset, train_dataset


class DivergenceError(RuntimeError):
    pass


def score_images(model, images, batch_size=256, progress=False):
    """Raw scores of uint8 images (N, 28, 28) in order, in inference mode."""
    fn = getattr(model, "_score_fn", None)
    if fn is None:
        fn = model._score_fn = tf.function(
            model.score, input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, None])])
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    scores = []
    for batch in eval_dataset(images, batch_size):
        scores.append(fn(batch).numpy())
        if bar:
            bar.add(len(scores[-1]))
    return np.concatenate(scores)


def _git_commit():
    """The code's commit (with '+changes' if the tree is dirty), or None outside a git checkout."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+changes" if dirty else "")) or None


def vector_isa(cpuinfo="/proc/cpuinfo"):
    """Widest x86 vector set: the same 2-core cell trains ~1.6-1.8x faster with AVX-512 than AVX2."""
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return None
    return next((name for name, flag in (("AVX-512", " avx512f"), ("AVX2", " avx2"))
                 if flag in flags), None)


def versions():
    import sklearn

    return {"git_commit": _git_commit(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "machine": ", ".join(filter(None, (f"{platform.machine()} {os.cpu_count()} cpus",
                                               vector_isa()))),
            # oneDNN changes kernels (and so, by rounding, GAN training trajectories)
            **{k: os.environ.get(k, "unset") for k in
               ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}}


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


def _history(output_dir):
    path = os.path.join(output_dir, "history.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _append_history(output_dir, row):
    """Per-epoch validation metrics, losses and seconds; an epoch re-run after a kill replaces its row."""
    rows = [r for r in _history(output_dir) if r["epoch"] < row["epoch"]]
    write_json(os.path.join(output_dir, "history.json"), rows + [row])


def _val_scores_path(output_dir, epoch):
    return os.path.join(output_dir, "checkpoints", f"best_val_scores_epoch{epoch}.npz")


def _save_best_val_scores(output_dir, epoch, scores):
    """Kept with the best checkpoint, so the final evaluation need not score validation again
    (scoring is deterministic; for AnoGAN's search that saves a quarter of the evaluation)."""
    path = _val_scores_path(output_dir, epoch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_npz(path, scores=scores)
    for name in os.listdir(os.path.dirname(path)):
        if name.startswith("best_val_scores_epoch") and name != os.path.basename(path):
            os.remove(os.path.join(os.path.dirname(path), name))


def _best_val_scores(output_dir, epoch, count):
    path = _val_scores_path(output_dir, epoch)
    if not os.path.exists(path):
        return None
    scores = np.load(path)["scores"]
    return scores if len(scores) == count else None


def _log_scalars(writer, epoch, values):
    with writer.as_default(step=epoch):
        for key, value in values.items():
            tf.summary.scalar(key, value)
    writer.flush()


class _StopOnNonFinite(keras.callbacks.Callback):
    """Stops fit at the first batch whose loss is NaN or inf and remembers which one."""

    bad_step = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and not all(np.isfinite(float(v)) for v in logs.values()):
            self.bad_step = batch + 1
            self.model.stop_training = True


def _load_splits(dataset, anomalous_class, protocol, split_seed, data_dir, limit):
    """(splits, source, protocol) for a named dataset or for `folder:PATH`."""
    if dataset.startswith(folders.PREFIX):
        splits = folders.load_splits(dataset, split_seed)
        source, protocol = dataset[len(folders.PREFIX):], "folder"
    else:
        if dataset not in datasets.DATASETS:
            raise UsageError("dataset", dataset,
                             f"one of {', '.join(datasets.DATASETS)} or folder:PATH")
        if protocol not in protocols.PROTOCOLS:
            raise UsageError("protocol", protocol, f"one of {', '.join(protocols.PROTOCOLS)}")
        raw = datasets.load(dataset, data_dir)
        splits = protocols.make_splits(raw, anomalous_class, protocol, split_seed)
        source = raw.source
    return (splits.limited(limit) if limit else splits), source, protocol


class _Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, headed "Epoch k/total" although fit runs one epoch at a time."""

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.total_epochs})


def _prepare(model, dataset, anomalous_class, output_dir, protocol, config, epochs, batch_size,
             train_seed, split_seed, data_dir, limit):
    """Checks every argument and loads the splits before anything is written."""
    model_cls = registry.get(model)
    cfg = config_lib.resolve(model_cls, config, epochs, batch_size)
    if limit is not None and limit <= 0:
        raise UsageError("limit", limit, "a positive number of images per split")
    splits, source, protocol = _load_splits(dataset, anomalous_class, protocol, split_seed,
                                            data_dir, limit)
    ensure_writable_dir(output_dir)
    identity = {"model": model, "dataset": dataset, "protocol": protocol,
                "anomalous_class": None if protocol == "folder" else int(anomalous_class),
                "train_seed": train_seed, "split_seed": split_seed, "limit": limit,
                "config": cfg}
    _check_identity(output_dir, identity)
    return model_cls, cfg, source, splits, identity


def checkpoint_managers(net, output_dir):
    """(run state variables, manager of the last epoch, manager of the best-validation epoch)."""
    state = {"epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "best_auprc": tf.Variable(-1.0, dtype=tf.float64, trainable=False),
             "best_epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "train_seconds": tf.Variable(0.0, dtype=tf.float64, trainable=False)}
    last = tf.train.CheckpointManager(tf.train.Checkpoint(model=net, **state),
                                      os.path.join(output_dir, "checkpoints", "last"), 1)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=net),
                                      os.path.join(output_dir, "checkpoints", "best"), 1)
    return state, last, best


def _train(net, cfg, splits, output_dir, train_seed, verbose):
    """Fits epoch by epoch from the last checkpoint; returns (state variables, divergence or None)."""
    state, last, best = checkpoint_managers(net, output_dir)
    if last.latest_checkpoint:
        last.checkpoint.restore(last.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resuming {output_dir} after epoch {int(state['epoch'].numpy())}", flush=True)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs"))
    stop = _StopOnNonFinite()
    for epoch in range(int(state["epoch"].numpy()), cfg["epochs"]):
        t0 = time.time()
        history = net.fit(train_dataset(splits.x_train, cfg["batch_size"], train_seed, epoch),
                          initial_epoch=epoch, epochs=epoch + 1, verbose=verbose,
                          shuffle=False,  # the dataset is shuffled per epoch already
                          callbacks=[stop, _Progress(cfg["epochs"])])
        state["train_seconds"].assign_add(time.time() - t0)
        if stop.bad_step is not None:
            return state, best, writer, (f"loss became NaN/inf in epoch {epoch + 1}, step "
                                         f"{stop.bad_step}")
        losses = {k: float(v[-1]) for k, v in history.history.items()}
        val_scores = score_images(net, splits.x_val)
        val = metrics.validation_metrics(val_scores, splits.y_val)
        improved = val.get("auprc", np.inf) > state["best_auprc"].numpy()  # no anomalies: latest
        if improved:
            state["best_auprc"].assign(val.get("auprc", -1.0))
            state["best_epoch"].assign(epoch + 1)
            _save_best_val_scores(output_dir, epoch + 1, val_scores)
            best.save()
        _append_history(output_dir, {"epoch": epoch + 1, "seconds": round(time.time() - t0, 1),
                                     **{f"val_{k}": v for k, v in val.items()}, **losses})
        state["epoch"].assign(epoch + 1)
        last.save()
        _log_scalars(writer, epoch + 1, {**losses, **{f"val/{k}": v for k, v in val.items()}})
        shown = "  ".join(f"val {k} {v:.4g}" for k, v in val.items())
        print(f"epoch {epoch + 1}/{cfg['epochs']}  {shown}{'  (best)' if improved else ''}  "
              f"{time.time() - t0:.0f}s", flush=True)
    return state, best, writer, None


def run(model, dataset, anomalous_class, output_dir, protocol="pooled", config=None,
        epochs=None, batch_size=None, train_seed=0, split_seed=0, data_dir=None, verbose=2,
        deterministic=True, limit=None):
    """Trains, selects on validation, tests once, exports; returns the results dict.

    A diverging run raises DivergenceError after evaluating and exporting the best epoch so far.
    """
    started = time.time()
    model_cls, cfg, source, splits, identity = _prepare(
        model, dataset, anomalous_class, output_dir, protocol, config, epochs, batch_size,
        train_seed, split_seed, data_dir, limit)
    keras.utils.set_random_seed(train_seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    channels = splits.x_train.shape[-1] if splits.x_train.ndim == 4 else 1
    net = model_cls(**cfg["model"], channels=channels)
    net.compile()
    state, best, writer, diverged = _train(net, cfg, splits, output_dir, train_seed, verbose)
    if diverged and not best.latest_checkpoint:
        raise DivergenceError(f"{model}: {diverged}; no epoch finished, so nothing was kept")

    tf.train.Checkpoint(model=net).restore(best.latest_checkpoint).assert_existing_objects_matched()
    t0 = time.time()
    val_scores = _best_val_scores(output_dir, int(state["best_epoch"].numpy()), len(splits.y_val))
    if val_scores is None:
        val_scores = score_images(net, splits.x_val, progress=verbose == 1)
    threshold = metrics.validation_threshold(val_scores, splits.y_val)
    val_metrics = metrics.evaluate(val_scores, splits.y_val, threshold)
    test_scores = (score_images(net, splits.x_test, progress=verbose == 1) if len(splits.y_test)
                   else np.zeros(0))
    test_metrics = metrics.evaluate(test_scores, splits.y_test, threshold)
    eval_time = time.time() - t0
    _log_scalars(writer, cfg["epochs"], {f"test/{k}": v for k, v in test_metrics.items()})
    if "auprc" in test_metrics:
        pngs = figures.write_all(output_dir, net, splits.x_test, test_scores, splits.y_test,
                                 threshold)
        with writer.as_default(step=cfg["epochs"]):
            for name, png in pngs.items():
                tf.summary.image(f"test/{name}", tf.image.decode_png(png)[tf.newaxis])
    export.save(net, os.path.join(output_dir, "saved_model"), channels=channels,
                threshold=threshold,
                metadata={**{k: identity[k] for k in ("model", "dataset", "anomalous_class",
                                                      "protocol", "config")},
                          "channels": channels,
                          # folder images were resized, so the scorer must resize too
                          "resize_to": IMAGE_SIZE if identity["protocol"] == "folder" else None})
    write_npz(os.path.join(output_dir, "scores.npz"), val_scores=val_scores,
              val_labels=splits.y_val, test_scores=test_scores, test_labels=splits.y_test)
    results = {**identity, "data_source": source, "splits": splits.counts(),
               "selected_epoch": int(state["best_epoch"].numpy()),
               "validation": val_metrics, "test": test_metrics,
               "wall_time_s": {"train": round(float(state["train_seconds"].numpy()), 1),
                               "evaluate": round(eval_time, 1),
                               "total_this_invocation": round(time.time() - started, 1)},
               "history": _history(output_dir), "versions": versions()}
    if diverged:
        results["diverged"] = diverged
    write_json(os.path.join(output_dir, "results.json"), results)
    if "auprc" in test_metrics:
        print(f"test AUPRC {test_metrics['auprc']:.4f}  AUROC {test_metrics['auroc']:.4f}  "
              f"F1 {test_metrics['f1']:.4f} (val threshold {threshold:.4g})", flush=True)
    if diverged:
        raise DivergenceError(f"{model}: {diverged}; stopped, results of the best epoch "
                              f"({results['selected_epoch']}) are in {output_dir}")
    return results
