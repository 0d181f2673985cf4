"""One training run: splits -> fit epoch by epoch -> validation model selection -> test -> export.

Test data is scored once, after the best-validation-AUPRC weights are restored. Every epoch
ends with one commit, the last checkpoint (which also records the best epoch); the best
checkpoint is a copy of it made afterwards, and repaired on resume if a kill came between.
Re-running the same command on the same output directory resumes, or says the run is finished.

The per-epoch side work (validation scoring and selection, the history row and the commit, the
best copy, the test curve, TensorBoard scalars, the console line) runs in Keras callbacks at
each epoch's end (callbacks.py). The epoch loop stays by hand: fit is called one epoch at a
time on a dataset shuffled by (train seed, epoch), so an epoch's batches do not depend on how
many epochs ran before in this process and a resumed run redoes exactly the same numbers; one
fit over all epochs would draw every epoch's order from one running shuffle and change results.
"""

import hashlib
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from anomaly_toolbox import metrics, models
from anomaly_toolbox.data import data_identity, load_splits
from anomaly_toolbox.data.folders import stream_error
from anomaly_toolbox.data.preprocessing import train_dataset
from anomaly_toolbox.errors import DivergenceError, UsageError, check_integer
from anomaly_toolbox.models.precision import policy as precision_policy
from anomaly_toolbox.run import distribute, export, figures
from anomaly_toolbox.run.callbacks import (CommitEpoch, EpochClock, EpochDiverged, EpochLine,
                                           EpochScalars, Progress, SelectOnValidation,
                                           StopOnNonFinite, TestCurve)
from anomaly_toolbox.run.checkpoints import (best_checkpoint, checkpoint_managers, repair_best,
                                              restore_last, sweep_temporaries)
from anomaly_toolbox.run.provenance import versions
from anomaly_toolbox.run.rundir import RunDir
from anomaly_toolbox.run.scoring import score_images
from anomaly_toolbox.run.spec import RunSpec


def _fit_callbacks(model, spec, splits, run_dir, state, last, writer, test_curve):
    """The model's own callbacks, then the side work in the crash-safety order that
    callbacks.py describes (Progress, made per fit, goes first)."""
    clock = EpochClock(state["train_seconds"])
    selection = SelectOnValidation(splits, state, run_dir)
    side_work = [clock, StopOnNonFinite(), selection,
                 CommitEpoch(state, last, run_dir, clock, selection)]
    if test_curve and metrics.has_both_classes(splits.y_test):
        side_work.append(TestCurve(splits, run_dir))
    own = model.fit_callbacks() if hasattr(model, "fit_callbacks") else []
    return own + side_work + [EpochScalars(writer), EpochLine(spec.epochs, clock, selection)]


def _train(model, spec, splits, run_dir, verbose, test_curve=False, replicas=1):
    """Fits epoch by epoch from the last checkpoint; returns (state, writer, divergence message
    or None)."""
    state, last, _ = checkpoint_managers(model, run_dir)
    with run_dir.writing():
        sweep_temporaries(run_dir)  # a killed process's half-written files (lock held)
    if restore_last(run_dir, last):  # the newest resume point that loads (see checkpoints.py)
        with run_dir.writing():
            repair_best(run_dir, state)
        print(f"Resuming {run_dir} after epoch {int(state['epoch'].numpy())}", flush=True)
    run_dir.history()  # damaged: refused before a new event file, an epoch or the finish
    writer = run_dir.summary_writer()  # a full disk names logs/ instead of losing events
    callbacks = _fit_callbacks(model, spec, splits, run_dir, state, last, writer, test_curve)
    for epoch in range(int(state["epoch"].numpy()), spec.epochs):
        data = train_dataset(splits.x_train, spec.batch_size, spec.train_seed, epoch,
                             spec.image_size, splits.padded, replicas)
        try:
            model.fit(data, initial_epoch=epoch, epochs=epoch + 1, verbose=verbose,
                      shuffle=False,  # the dataset is shuffled per epoch already
                      callbacks=[Progress(spec.epochs), *callbacks])
        except EpochDiverged as e:
            return state, writer, str(e)
    return state, writer, None


def fit(model, dataset, anomalous_class, output_dir, verbose=2, record_test_curve=False,
        strategy="default", cpu_devices=None, deterministic=True, **description):
    """`run` of the RunSpec that RunSpec.resolve makes of the other keywords (protocol, profile,
    config, epochs, batch_size, image_size, precision, seeds, limit, threshold, data_dir)."""
    spec = RunSpec.resolve(model, dataset, anomalous_class, output_dir, **description)
    return run(spec, verbose=verbose, record_test_curve=record_test_curve, strategy=strategy,
               cpu_devices=cpu_devices, deterministic=deterministic)


def run(spec, verbose=2, record_test_curve=False, strategy="default", cpu_devices=None,
        deterministic=True):
    """Trains the run `spec` describes, selects on validation, tests once, exports; returns the
    results dict. The rest is how it executes:

    `strategy`: "default", "mirrored" (local GPUs, or `cpu_devices` logical CPU devices) or
    "multi_worker" (TF_CONFIG); the spec's batch size stays the global batch, and only the chief
    writes `spec.output_dir` (other workers write into a temporary folder, removed at the end).
    `record_test_curve` also scores TEST after every epoch into analysis/test_curve.json, for
    measuring what picking the best test epoch would inflate; selection never reads it.

    Every argument is checked and the data loaded before anything is written. A diverging run
    raises DivergenceError after evaluating and exporting the best epoch so far.
    """
    started = time.time()
    # as the CLI's --verbose: Keras runs silent on "x" and as 1 on True, without a word
    verbose = check_integer("verbose", verbose, 0, 2, "0, 1 or 2")
    for name, value in (("record_test_curve", record_test_curve), ("deterministic", deterministic)):
        if not isinstance(value, bool):  # "no" was true: determinism silently on
            raise UsageError(name, value, "True or False")
    distribute.check(strategy, cpu_devices)
    # before the data: a folder's images decode with TensorFlow ops, after which its logical
    # devices and collectives are fixed (--cpu_devices was refused for every folder dataset)
    tf_strategy, chief = distribute.make(strategy, cpu_devices)
    splits = load_splits(spec.dataset, spec.anomalous_class, spec.protocol, spec.split_seed,
                         spec.data_dir, spec.limit, spec.image_size)
    replicas = tf_strategy.num_replicas_in_sync
    distribute.check_batch(spec.batch_size, replicas, strategy, cpu_devices)
    distribute.check_train_images(len(splits.x_train), replicas, strategy, cpu_devices,
                                  spec.dataset, spec.limit)
    run_dir = RunDir(spec.output_dir if chief else
                     tempfile.mkdtemp(prefix="anomaly_toolbox-worker-"))
    try:
        with run_dir.locked():
            run_dir.claim(spec.identity(), data_identity(splits.source))
            if run_dir.finished():
                return _already_finished(run_dir, spec.threshold)
            model = _build(spec, splits, tf_strategy, deterministic)
            state, writer, diverged = _train(model, spec, splits, run_dir, verbose,
                                             record_test_curve, replicas)
            distribution = {"strategy": strategy, "replicas": replicas}
            return _finish(model, spec, splits, run_dir, state, writer, diverged, started,
                           verbose, distribution)
    except tf.errors.OpError as e:  # a train/ file that stopped decoding after the check
        raise stream_error(e) or e
    finally:
        if not chief:
            shutil.rmtree(run_dir.path, ignore_errors=True)


def _build(spec, splits, tf_strategy, deterministic):
    """The compiled model, seeded by the train seed, in the spec's precision."""
    keras.utils.set_random_seed(spec.train_seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    with tf_strategy.scope(), precision_policy(spec.precision):
        model = models.get(spec.model)(**spec.hyperparameters, channels=splits.channels,
                                       image_size=spec.image_size)
        model.compile()
    return model


def _already_finished(run_dir, threshold="f1"):
    """A finished run is not trained, tested or logged again; a diverged one stays an error, and
    another threshold rule is refused like any other difference: its SavedModel, figures and
    test F1 hold the old one (f1 asked of a run without validation anomalies is its fpr:0.01)."""
    results = run_dir.results()
    kept = metrics.other_rule(results.get("validation", {}), threshold)
    if kept:
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


def _finish(model, spec, splits, run_dir, state, writer, diverged, started, verbose,
            distribution):
    """Restores the best epoch, scores validation and test, writes figures, SavedModel, scores
    and results.json (last: its presence marks the run finished)."""
    history = run_dir.history()  # damaged: refused before the SavedModel and scores are rewritten
    best = tf.train.latest_checkpoint(run_dir.best_checkpoints)
    if diverged and not best:
        raise DivergenceError(f"{spec.model}: {diverged}; no epoch finished, so nothing was kept")
    best = best_checkpoint(run_dir, state)  # a damaged copy is made again from checkpoints/last
    tf.train.Checkpoint(model=model).restore(best).assert_existing_objects_matched().expect_partial()
    t0 = time.time()
    selected_epoch = int(state["best_epoch"].numpy())
    val_scores = run_dir.best_val_scores(selected_epoch, len(splits.y_val))
    if val_scores is None:
        val_scores = score_images(model, splits.x_val, progress=verbose == 1,
                                  padded=splits.padded)
    threshold = metrics.validation_threshold(val_scores, splits.y_val, spec.threshold)
    val_metrics = metrics.evaluate(val_scores, splits.y_val, threshold)
    test_scores = score_images(model, splits.x_test, progress=verbose == 1,
                               padded=splits.padded)
    bad_test = metrics.non_finite(test_scores, "test", selected_epoch)
    if bad_test:
        raise DivergenceError(f"{spec.model}: {bad_test}, the selected one; nothing was exported")
    test_metrics = metrics.evaluate(test_scores, splits.y_test, threshold)
    eval_time = time.time() - t0
    writer.write(spec.epochs, scalars={f"test/{k}": v for k, v in test_metrics.items()})
    if "auprc" in test_metrics:
        pngs = figures.write_all(run_dir, model, splits.x_test, test_scores, splits.y_test,
                                 threshold, title=figures.title(spec.identity()),
                                 padded=splits.padded)
        writer.write(spec.epochs, images={f"test/{name}": png for name, png in pngs.items()})
    with run_dir.writing(run_dir.saved_model):
        export.save(model, run_dir.saved_model, channels=splits.channels, threshold=threshold,
                    metadata=spec.saved_model_metadata(splits.channels),
                    image_size=spec.image_size, padded=splits.padded)
    run_dir.write_scores(val_scores, splits.y_val, test_scores, splits.y_test, splits.val_index,
                         splits.test_index)
    results = spec.results(
        data_source=splits.source, splits=splits.counts(), selected_epoch=selected_epoch,
        validation=val_metrics, test=test_metrics,
        wall_time_s={"train": round(float(state["train_seconds"].numpy()), 1),
                     "evaluate": round(eval_time, 1),
                     "total_this_invocation": round(time.time() - started, 1)},
        history=history, versions=versions(),
        distribution={**distribution, "weights_sha256": _weights_sha256(model)},
        **({"diverged": diverged} if diverged else {}))
    run_dir.write_results(results)
    if distribution["strategy"] == "multi_worker":
        print(f"final weights sha256 {results['distribution']['weights_sha256']}", flush=True)
    said = metrics.threshold_said(threshold, spec.threshold)
    if "auprc" in test_metrics:
        print(f"test AUPRC {test_metrics['auprc']:.4f}  AUROC {test_metrics['auroc']:.4f}  "
              f"F1 {test_metrics['f1']:.4f} ({said})", flush=True)
    else:  # said, not a silent exit 0 (--limit=2, or a folder without test/ images)
        anomalous = int(splits.y_test.sum())
        print(f"no test AUPRC or AUROC: test holds {anomalous} anomalous and "
              f"{len(splits.y_test) - anomalous} normal images, and they need both ({said})",
              flush=True)
    if diverged:
        raise DivergenceError(f"{spec.model}: {diverged}; stopped, results of the best epoch "
                              f"({selected_epoch}) are in {run_dir}")
    return results
