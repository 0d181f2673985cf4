"""`RunDir`: the one place that knows the file layout of a run folder.

    run.json            identity: model, dataset, protocol, class, seeds, limit, resolved config
    history.json        per-epoch validation metrics, losses and seconds
    checkpoints/last    resume point (weights, optimizers, epoch counters)
    checkpoints/best    best-validation-AUPRC weights
    checkpoints/best_val_scores_epoch<k>.npz   validation scores of the best epoch
    scores.npz          raw validation and test scores with labels
    results.json        everything measured (see README)
    saved_model/        the exported scorer
    logs/               TensorBoard
    test_*.png          figures
"""

import json
import os

import numpy as np

from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.files import ensure_writable_dir, write_json, write_npz

FIGURES = {"curves": "test_curves.png", "histogram": "test_score_histogram.png",
           "extremes": "test_extremes.png"}


class RunDir:
    def __init__(self, path):
        self.path = str(path)

    def __str__(self):
        return self.path

    def file(self, name):
        return os.path.join(self.path, name)

    run_json = property(lambda self: self.file("run.json"))
    history_json = property(lambda self: self.file("history.json"))
    results_json = property(lambda self: self.file("results.json"))
    scores_npz = property(lambda self: self.file("scores.npz"))
    saved_model = property(lambda self: self.file("saved_model"))
    logs = property(lambda self: self.file("logs"))
    checkpoints = property(lambda self: self.file("checkpoints"))
    last_checkpoints = property(lambda self: os.path.join(self.checkpoints, "last"))
    best_checkpoints = property(lambda self: os.path.join(self.checkpoints, "best"))

    def figure(self, name):
        return self.file(FIGURES[name])

    def has_best_checkpoint(self):
        return os.path.exists(os.path.join(self.best_checkpoints, "checkpoint"))

    # ------------------------------------------------------------------------ identity

    def read_json(self, path):
        with open(path) as f:
            return json.load(f)

    def identity(self):
        return self.read_json(self.run_json)

    def claim(self, identity):
        """A run folder belongs to one (model, data, config, seeds): write the identity, or check it."""
        ensure_writable_dir(self.path)
        if os.path.exists(self.run_json):
            previous = self.identity()
            if previous != identity:
                diff = sorted(k for k in set(previous) | set(identity)
                              if previous.get(k) != identity.get(k))
                raise UsageError("output_dir", self.path,
                                 f"an empty directory or one holding this same run; it holds a run "
                                 f"that differs in {', '.join(diff)}")
        else:
            write_json(self.run_json, identity)

    # ------------------------------------------------------------------------- history

    def history(self):
        return self.read_json(self.history_json) if os.path.exists(self.history_json) else []

    def append_history(self, row):
        """An epoch re-run after a kill replaces its row."""
        rows = [r for r in self.history() if r["epoch"] < row["epoch"]]
        write_json(self.history_json, rows + [row])

    # ------------------------------------------------------------ best validation scores

    def _val_scores_path(self, epoch):
        return os.path.join(self.checkpoints, f"best_val_scores_epoch{epoch}.npz")

    def save_best_val_scores(self, epoch, scores):
        """Kept with the best checkpoint, so the final evaluation need not score validation again
        (scoring is deterministic; for AnoGAN's search that saves a quarter of the evaluation)."""
        path = self._val_scores_path(epoch)
        os.makedirs(self.checkpoints, exist_ok=True)
        write_npz(path, scores=scores)
        for name in os.listdir(self.checkpoints):
            if name.startswith("best_val_scores_epoch") and name != os.path.basename(path):
                os.remove(os.path.join(self.checkpoints, name))

    def best_val_scores(self, epoch, count):
        path = self._val_scores_path(epoch)
        if not os.path.exists(path):
            return None
        scores = np.load(path)["scores"]
        return scores if len(scores) == count else None

    # ---------------------------------------------------------------------- final files

    def write_scores(self, val_scores, val_labels, test_scores, test_labels):
        write_npz(self.scores_npz, val_scores=val_scores, val_labels=val_labels,
                  test_scores=test_scores, test_labels=test_labels)

    def scores(self):
        return dict(np.load(self.scores_npz))

    def write_results(self, results):
        write_json(self.results_json, results)

    def results(self):
        return self.read_json(self.results_json)
