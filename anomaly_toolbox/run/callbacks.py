"""Keras callbacks of a training run: the per-epoch side work, at each epoch's end in this order:
Progress, the model's own callbacks, then EpochClock, StopOnNonFinite, SelectOnValidation,
CommitEpoch, TestCurve (analysis only), EpochScalars, EpochLine.

The order is the crash-safety order: the history row and checkpoints/last (the commit) come
after selection and before anything else, so a kill anywhere resumes from a consistent epoch.
A divergence (a NaN/inf loss or validation score) raises EpochDiverged out of fit, before the
commit; the run then exports the best epoch so far. The epoch loop itself stays by hand in
training.py (see its docstring).
"""

import time

import keras
import numpy as np

from anomaly_toolbox import metrics
from anomaly_toolbox.run.checkpoints import publish_best
from anomaly_toolbox.run.scoring import score_images


class EpochDiverged(Exception):
    """The epoch's loss or validation scores became NaN/inf; the message says where."""


def validation_logs(logs):
    """{metric: value} of the val_* entries SelectOnValidation added to an epoch's logs."""
    return {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}


class Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, headed "Epoch k/total" although fit runs one epoch at a time."""

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.total_epochs})


class EpochClock(keras.callbacks.Callback):
    """Adds the epoch's training time (from fit's start to the epoch's end, before validation) to
    the checkpointed train_seconds; `seconds()` is the whole epoch so far."""

    def __init__(self, train_seconds):
        super().__init__()
        self.train_seconds, self.start = train_seconds, time.time()

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds.assign_add(self.seconds())

    def seconds(self):
        return time.time() - self.start


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops fit at the first batch whose loss is NaN or inf; at the epoch's end EpochDiverged
    names the epoch and step."""

    bad_step = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and not all(np.isfinite(float(v)) for v in logs.values()):
            self.bad_step = batch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.bad_step is not None:
            raise EpochDiverged(f"loss became NaN/inf in epoch {epoch + 1}, step {self.bad_step}")


class SelectOnValidation(keras.callbacks.Callback):
    """Scores validation and adds its metrics to the logs as val_* (as fit's own validation
    would: History, the scalars and any Keras callback see them). The best epoch is the highest
    validation AUPRC from the model's first_selectable_epoch on (e.g. after a GAN stage), or,
    without validation anomalies, the latest; its scores are kept for the final evaluation."""

    def __init__(self, splits, state, run_dir):
        super().__init__()
        self.splits, self.state, self.run_dir = splits, state, run_dir
        self.improved = False

    def on_epoch_end(self, epoch, logs=None):
        scores = score_images(self.model, self.splits.x_val, padded=self.splits.padded)
        diverged = metrics.non_finite(scores, "validation", epoch + 1)
        if diverged:
            raise EpochDiverged(diverged)
        val = metrics.validation_metrics(scores, self.splits.y_val)
        self.improved = (epoch + 1 >= getattr(self.model, "first_selectable_epoch", 1)
                         and val.get("auprc", np.inf) > self.state["best_auprc"].numpy())
        if self.improved:
            self.state["best_auprc"].assign(val.get("auprc", -1.0))
            self.state["best_epoch"].assign(epoch + 1)
            self.run_dir.save_best_val_scores(epoch + 1, scores)
        logs.update({f"val_{k}": v for k, v in val.items()})


class CommitEpoch(keras.callbacks.Callback):
    """The history row, then the epoch's one commit, checkpoints/last (what resume and selection
    trust; a full disk keeps the previous one), then the copy to checkpoints/best if the epoch
    improved (repaired on resume if a kill comes between)."""

    def __init__(self, state, last, run_dir, clock, selection):
        super().__init__()
        self.state, self.last, self.run_dir = state, last, run_dir
        self.clock, self.selection = clock, selection

    def on_epoch_end(self, epoch, logs=None):
        self.run_dir.append_history({"epoch": epoch + 1, "seconds": round(self.clock.seconds(), 1),
                                     **logs})
        self.state["epoch"].assign(epoch + 1)
        with self.run_dir.writing(self.run_dir.last_checkpoints):
            self.last.save()
        if self.selection.improved:
            with self.run_dir.writing(self.run_dir.best_checkpoints):
                publish_best(self.run_dir, self.last.latest_checkpoint, epoch + 1)


class TestCurve(keras.callbacks.Callback):
    """Analysis only (--record_test_curve): each epoch's TEST metrics into
    analysis/test_curve.json, for measuring what picking the best test epoch would inflate;
    selection never reads it."""

    def __init__(self, splits, run_dir):
        super().__init__()
        self.splits, self.run_dir = splits, run_dir

    def on_epoch_end(self, epoch, logs=None):
        scores = score_images(self.model, self.splits.x_test, padded=self.splits.padded)
        self.run_dir.append_test_curve({"epoch": epoch + 1, **metrics.ranking_metrics(
            scores, self.splits.y_test)})


class EpochScalars(keras.callbacks.Callback):
    """The epoch's logs as TensorBoard scalars: losses by name, validation metrics as val/NAME."""

    def __init__(self, writer):
        super().__init__()
        self.writer = writer

    def on_epoch_end(self, epoch, logs=None):
        val = validation_logs(logs)
        self.writer.write(epoch + 1, scalars={
            **{k: v for k, v in logs.items() if not k.startswith("val_")},
            **{f"val/{k}": v for k, v in val.items()}})


class EpochLine(keras.callbacks.Callback):
    """One console line per epoch: validation metrics, "(best)", seconds."""

    def __init__(self, total_epochs, clock, selection):
        super().__init__()
        self.total_epochs, self.clock, self.selection = total_epochs, clock, selection

    def on_epoch_end(self, epoch, logs=None):
        shown = "  ".join(f"val {k} {v:.4g}" for k, v in validation_logs(logs).items())
        print(f"epoch {epoch + 1}/{self.total_epochs}  {shown}"
              f"{'  (best)' if self.selection.improved else ''}  {self.clock.seconds():.0f}s",
              flush=True)
