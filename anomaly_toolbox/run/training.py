"""One training run: splits -> fit epoch by epoch -> validation model selection -> test -> export.

Test data is scored once, after the best-validation-AUPRC weights are restored. Every epoch
ends with one commit, the last checkpoint (which also records the best epoch); the best
checkpoint is a copy of it made afterwards, and repaired on resume if a kill came between.
Re-running the same command on the same output directory resumes, or says the run is finished.
"""

import hashlib
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from anomaly_toolbox import config as config_lib
from anomaly_toolbox import metrics, models
from anomaly_toolbox.data import load_splits
from anomaly_toolbox.data.folders import stream_error
from anomaly_toolbox.data.preprocessing import train_dataset
from anomaly_toolbox.errors import DivergenceError, UsageError
from anomaly_toolbox.models.precision import policy as precision_policy
from anomaly_toolbox.run import distribute, export, figures
from anomaly_toolbox.run.checkpoints import (best_checkpoint, checkpoint_managers, publish_best,
                                              repair_best, restore_last, sweep_temporaries)
from anomaly_toolbox.run.callbacks import Progress, StopOnNonFinite
from anomaly_toolbox.run.provenance import versions
from anomaly_toolbox.run.rundir import RunDir
from anomaly_toolbox.run.scoring import score_images


def _log_scalars(writer, epoch, values):
    writer.write(epoch, scalars=values)


def non_finite(scores, what, epoch):
    """A message like the NaN-loss one if any score is NaN/inf (metrics cannot rank those)."""
    bad = int(np.sum(~np.isfinite(scores)))
    return f"{what} scores became NaN/inf in epoch {epoch} ({bad} of {len(scores)})" if bad else None


def _train(model, cfg, splits, run_dir, train_seed, verbose, test_curve=False):
    """Fits epoch by epoch from the last checkpoint; returns (state, writer, divergence message
    or None)."""
    state, last, _ = checkpoint_managers(model, run_dir)
    with run_dir.writing():
        sweep_temporaries(run_dir)  # a killed process's half-written files (lock held)
    if restore_last(run_dir, last):  # the newest resume point that loads (see checkpoints.py)
        with run_dir.writing():
            repair_best(run_dir, state)
        print(f"Resuming {run_dir} after epoch {int(state['epoch'].numpy())}", flush=True)
    writer = run_dir.summary_writer()  # a full disk names logs/ instead of losing events
    stop = StopOnNonFinite()
    own_callbacks = model.fit_callbacks() if hasattr(model, "fit_callbacks") else []
    first_selectable = getattr(model, "first_selectable_epoch", 1)  # e.g. after a GAN stage
    for epoch in range(int(state["epoch"].numpy()), cfg["epochs"]):
        t0 = time.time()
        data = train_dataset(splits.x_train, cfg["batch_size"], train_seed, epoch,
                             cfg["image_size"], splits.padded)
        history = model.fit(data,
                            initial_epoch=epoch, epochs=epoch + 1, verbose=verbose,
                            shuffle=False,  # the dataset is shuffled per epoch already
                            callbacks=[stop, Progress(cfg["epochs"]), *own_callbacks])
        state["train_seconds"].assign_add(time.time() - t0)
        if stop.bad_step is not None:
            return state, writer, f"loss became NaN/inf in epoch {epoch + 1}, step {stop.bad_step}"
        losses = {k: float(v[-1]) for k, v in history.history.items()}
        val_scores = score_images(model, splits.x_val, padded=splits.padded)
        if non_finite(val_scores, "validation", epoch + 1):
            return state, writer, non_finite(val_scores, "validation", epoch + 1)
        val = metrics.validation_metrics(val_scores, splits.y_val)
        improved = (epoch + 1 >= first_selectable  # no anomalies: the latest selectable epoch
                    and val.get("auprc", np.inf) > state["best_auprc"].numpy())
        if improved:
            state["best_auprc"].assign(val.get("auprc", -1.0))
            state["best_epoch"].assign(epoch + 1)
            run_dir.save_best_val_scores(epoch + 1, val_scores)
        run_dir.append_history({"epoch": epoch + 1, "seconds": round(time.time() - t0, 1),
                                **{f"val_{k}": v for k, v in val.items()}, **losses})
        state["epoch"].assign(epoch + 1)
        with run_dir.writing(run_dir.last_checkpoints):  # disk full: the previous one stays
            last.save()  # the commit: what resume and selection trust
        if improved:
            with run_dir.writing(run_dir.best_checkpoints):
                publish_best(run_dir, last.latest_checkpoint, epoch + 1)
        if test_curve and metrics.has_both_classes(splits.y_test):  # analysis only, never read
            run_dir.append_test_curve({"epoch": epoch + 1, **metrics.ranking_metrics(
                score_images(model, splits.x_test), splits.y_test)})
        _log_scalars(writer, epoch + 1, {**losses, **{f"val/{k}": v for k, v in val.items()}})
        shown = "  ".join(f"val {k} {v:.4g}" for k, v in val.items())
        print(f"epoch {epoch + 1}/{cfg['epochs']}  {shown}{'  (best)' if improved else ''}  "
              f"{time.time() - t0:.0f}s", flush=True)
    return state, writer, None


def _portable(dataset):
    """folder:/home/me/imgs -> folder:imgs: results say what the data was, not where it lay."""
    if not dataset.startswith("folder:"):
        return dataset
    return "folder:" + (os.path.basename(os.path.normpath(dataset[len("folder:"):])) or "folder")


def _identity(model_name, dataset, anomalous_class, splits, protocol, train_seed, split_seed,
              limit, cfg):
    """What run.json records; a folder dataset has no class and records protocol "folder"."""
    folder = splits.kind == "folder"
    return {"model": model_name, "dataset": dataset, "protocol": "folder" if folder else protocol,
            "anomalous_class": None if folder else int(anomalous_class),
            "train_seed": train_seed, "split_seed": split_seed, "limit": limit, "config": cfg}


def run(model_name, dataset, anomalous_class, output_dir, protocol="pooled", config=None,
        epochs=None, batch_size=None, train_seed=0, split_seed=0, data_dir=None, verbose=2,
        deterministic=True, limit=None, threshold="f1", strategy="default", cpu_devices=None,
        record_test_curve=False, precision=None, image_size=None):
    """Trains, selects on validation, tests once, exports; returns the results dict.

    `threshold` is the rule choosing the exported threshold on validation scores: "f1"
    (F1-optimal) or "fpr:RATE" (a RATE share of validation normals above it). `strategy`:
    "default", "mirrored" (local GPUs, or `cpu_devices` logical CPU devices) or "multi_worker"
    (TF_CONFIG); the config's batch size stays the global batch, and only the chief writes
    `output_dir` (other workers write into a temporary folder, removed at the end).
    `precision` overrides the config's ("auto" by default: see models/precision.py).
    `record_test_curve` also scores TEST after every epoch into analysis/test_curve.json, for
    measuring what picking the best test epoch would inflate; selection never reads it.

    Every argument is checked and the data loaded before anything is written. A diverging run
    raises DivergenceError after evaluating and exporting the best epoch so far.
    """
    started = time.time()
    model_cls = models.get(model_name)
    cfg = config_lib.resolve(model_cls, config, epochs, batch_size, precision, image_size)
    splits = load_splits(dataset, anomalous_class, protocol, split_seed, data_dir, limit,
                         cfg["image_size"])
    identity = _identity(model_name, dataset, anomalous_class, splits, protocol, train_seed,
                         split_seed, limit, cfg)
    distribute.check(strategy, cpu_devices)
    tf_strategy, chief = distribute.make(strategy, cpu_devices)
    run_dir = RunDir(output_dir if chief else tempfile.mkdtemp(prefix="anomaly_toolbox-worker-"))
    try:
        return _run(run_dir, model_cls, cfg, splits, identity, train_seed, deterministic, verbose,
                    threshold, tf_strategy, strategy, started, record_test_curve)
    except tf.errors.OpError as e:  # a train/ file that stopped decoding after the check
        raise stream_error(e) or e
    finally:
        if not chief:
            shutil.rmtree(run_dir.path, ignore_errors=True)


def _run(run_dir, model_cls, cfg, splits, identity, train_seed, deterministic, verbose, threshold,
         tf_strategy, strategy, started, test_curve):
    with run_dir.locked():
        run_dir.claim(identity)
        if run_dir.finished():
            return _already_finished(run_dir, threshold)
        keras.utils.set_random_seed(train_seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        with tf_strategy.scope(), precision_policy(cfg["precision"]):
            model = model_cls(**cfg["model"], channels=splits.channels,
                              image_size=cfg["image_size"])
            model.compile()
        state, writer, diverged = _train(model, cfg, splits, run_dir, train_seed, verbose,
                                         test_curve)
        distribution = {"strategy": strategy, "replicas": tf_strategy.num_replicas_in_sync}
        return _finish(model, splits, run_dir, identity, cfg, state, writer, diverged, threshold,
                       started, verbose, distribution)


def _already_finished(run_dir, threshold="f1"):
    """A finished run is not trained, tested or logged again; a diverged one stays an error, and
    another threshold rule is refused like any other difference: its SavedModel, figures and
    test F1 hold the old one (f1 asked of a run without validation anomalies is its fpr:0.01)."""
    results = run_dir.results()
    validation = results.get("validation", {})
    kept = validation.get("threshold_target_fpr")
    kept = "f1" if kept is None else f"fpr:{kept:g}"
    kind, rate = metrics.parse_threshold(threshold)
    asked = f"fpr:{rate or 0.01:g}" if kind == "fpr" or "auprc" not in validation else "f1"
    if asked != kept:
        raise UsageError("output_dir", run_dir.path, f"an empty directory or one holding this "
                         f"same run; it holds a finished run with threshold: {kept!r} -> "
                         f"{threshold!r}; choose a new --output_dir")
    print(f"already finished: {run_dir.results_json}", flush=True)
    if results.get("diverged"):
        raise DivergenceError(f"already finished: {run_dir.results_json} ({results['diverged']})")
    return results


def _weights_sha256(model):
    """Of the exported (best-epoch) weights: equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(w.tobytes())
    return digest.hexdigest()


def _finish(model, splits, run_dir, identity, cfg, state, writer, diverged, threshold, started,
            verbose, distribution):
    """Restores the best epoch, scores validation and test, writes figures, SavedModel, scores
    and results.json (last: its presence marks the run finished)."""
    model_name, best = identity["model"], tf.train.latest_checkpoint(run_dir.best_checkpoints)
    if diverged and not best:
        raise DivergenceError(f"{model_name}: {diverged}; no epoch finished, so nothing was kept")
    best = best_checkpoint(run_dir, state)  # a damaged copy is made again from checkpoints/last
    tf.train.Checkpoint(model=model).restore(best).assert_existing_objects_matched().expect_partial()
    t0 = time.time()
    selected_epoch = int(state["best_epoch"].numpy())
    val_scores = run_dir.best_val_scores(selected_epoch, len(splits.y_val))
    if val_scores is None:
        val_scores = score_images(model, splits.x_val, progress=verbose == 1,
                                  padded=splits.padded)
    threshold = metrics.validation_threshold(val_scores, splits.y_val, threshold)
    val_metrics = metrics.evaluate(val_scores, splits.y_val, threshold)
    test_scores = score_images(model, splits.x_test, progress=verbose == 1,
                               padded=splits.padded)
    if non_finite(test_scores, "test", selected_epoch):
        raise DivergenceError(f"{model_name}: {non_finite(test_scores, 'test', selected_epoch)}, "
                              f"the selected one; nothing was exported")
    test_metrics = metrics.evaluate(test_scores, splits.y_test, threshold)
    eval_time = time.time() - t0
    _log_scalars(writer, cfg["epochs"], {f"test/{k}": v for k, v in test_metrics.items()})
    if "auprc" in test_metrics:
        pngs = figures.write_all(run_dir, model, splits.x_test, test_scores, splits.y_test,
                                 threshold, title=figures.title(identity), padded=splits.padded)
        writer.write(cfg["epochs"], images={f"test/{name}": png for name, png in pngs.items()})
    with run_dir.writing(run_dir.saved_model):
        export.save(model, run_dir.saved_model, channels=splits.channels, threshold=threshold,
                    metadata={**{k: identity[k] for k in ("model", "dataset", "anomalous_class",
                                                          "protocol", "config")},
                              "channels": splits.channels},
                    image_size=cfg["image_size"], padded=splits.padded)
    run_dir.write_scores(val_scores, splits.y_val, test_scores, splits.y_test, splits.val_index,
                         splits.test_index)
    results = {**identity, "dataset": _portable(identity["dataset"]), "data_source": splits.source,
               "splits": splits.counts(),
               "selected_epoch": selected_epoch, "validation": val_metrics, "test": test_metrics,
               "wall_time_s": {"train": round(float(state["train_seconds"].numpy()), 1),
                               "evaluate": round(eval_time, 1),
                               "total_this_invocation": round(time.time() - started, 1)},
               "history": run_dir.history(), "versions": versions(),
               "distribution": {**distribution, "weights_sha256": _weights_sha256(model)}}
    if diverged:
        results["diverged"] = diverged
    run_dir.write_results(results)
    if distribution["strategy"] == "multi_worker":
        print(f"final weights sha256 {results['distribution']['weights_sha256']}", flush=True)
    if "auprc" in test_metrics:
        print(f"test AUPRC {test_metrics['auprc']:.4f}  AUROC {test_metrics['auroc']:.4f}  "
              f"F1 {test_metrics['f1']:.4f} (val threshold {threshold:.4g})", flush=True)
    if diverged:
        raise DivergenceError(f"{model_name}: {diverged}; stopped, results of the best epoch "
                              f"({selected_epoch}) are in {run_dir}")
    return results
