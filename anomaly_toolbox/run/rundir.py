"""`RunDir`: the one place that knows the file layout of a run folder.

    .lock               held (flock) by the one process training into the folder
    train.log           the benchmark's log of the train command (written before run.json)
    run.json            identity (RunSpec.identity): model, dataset, protocol, class, seeds,
                        limit, resolved config; "data": the images' hashes (data_identity)
    history.json        per-epoch validation metrics, losses and seconds
    checkpoints/last    resume point (weights, optimizers, epoch counters, best epoch): the
                        commit of an epoch; everything else is trusted only as far as it says
    checkpoints/best    best-validation-AUPRC weights, ckpt-<epoch>
    checkpoints/best_val_scores_epoch<k>.npz   validation scores of the best epoch
    scores.npz          raw validation and test scores with labels
    results.json        everything measured (see README)
    saved_model/        the exported scorer
    logs/               TensorBoard
    test_*.png          figures
    analysis/test_curve.json   only with --record_test_curve: each epoch's TEST metrics, for
                        the budget study's comparison; the run never reads it (selection is on
                        validation)
"""

import contextlib
import fcntl
import glob
import json
import os
import struct

import numpy as np

from anomaly_toolbox.errors import DataError, UsageError
from anomaly_toolbox.files import ensure_writable_dir, naming_disk_full, write_json, write_npz

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
    test_curve_json = property(lambda self: os.path.join(self.file("analysis"), "test_curve.json"))

    def append_test_curve(self, row):
        """Analysis only: written here, read by the benchmark report, never by training."""
        rows = []
        if os.path.exists(self.test_curve_json):
            rows = [r for r in self.read_json(self.test_curve_json, list)
                    if r["epoch"] < row["epoch"]]
        with self.writing(self.test_curve_json):
            os.makedirs(os.path.dirname(self.test_curve_json), exist_ok=True)
            write_json(self.test_curve_json, rows + [row])

    def figure(self, name):
        return self.file(FIGURES[name])

    def finished(self):
        return os.path.exists(self.results_json)

    def has_best_checkpoint(self):
        return os.path.exists(os.path.join(self.best_checkpoints, "checkpoint"))

    # ------------------------------------------------------------------------ identity

    def read_json(self, path, kind=None):
        """The file's JSON (a `kind`, if given: dict or list); a file cut short or edited by
        hand is one DataError naming it (a JSONDecodeError or AttributeError traceback before)."""
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            raise DataError(f"{path}: damaged, not valid JSON ({e}); restore it, or use a new "
                            f"folder") from e
        if kind is not None and not isinstance(data, kind):
            raise DataError(f"{path}: damaged, it holds {json.dumps(data)[:40]} where a JSON "
                            f"{'object' if kind is dict else 'list'} belongs; restore it, or use "
                            f"a new folder")
        return data

    def identity(self):
        return self.read_json(self.run_json, dict)

    @contextlib.contextmanager
    def locked(self):
        """One process at a time trains into a folder; the OS drops the lock if that process dies.
        A folder that holds files but no run.json is someone else's (images, an ensemble): refused
        before .lock is written into it. Hidden names (a killed process's temporaries, .DS_Store)
        and the benchmark's train.log do not count."""
        ensure_writable_dir(self.path)
        others = [] if os.path.exists(self.run_json) else sorted(
            n for n in os.listdir(self.path) if not n.startswith(".") and n != "train.log")
        if others:
            raise UsageError("output_dir", self.path, f"an empty directory or one holding a run; "
                             f"it holds {len(others)} other file(s) ({others[0]!r}, no run.json); "
                             f"choose a new --output_dir")
        fd = os.open(self.file(".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError("output_dir", self.path, "a run folder no other process is using; "
                             "another one is training into it (it holds .lock)") from None
        try:
            yield self
        finally:
            os.close(fd)  # releases the lock

    def claim(self, identity, data=None):
        """A run folder belongs to one (model, data, config, seeds): write the identity, or check it.
        `data` (data_identity of the splits' source) stops a resume on other images under the
        same dataset name or path; folders written before it was recorded are checked without."""
        ensure_writable_dir(self.path)
        identity = {**identity, **({"data": data} if data else {})}
        if os.path.exists(self.run_json):
            recorded = self.identity()
            if "data" not in recorded:
                identity.pop("data", None)
            # run folders written before image_size existed trained at 32x32
            old, new = {"config.image_size": 32, **_dotted(recorded)}, _dotted(identity)
            diff = differences(old, new)
            if diff:
                raise UsageError("output_dir", self.path,
                                 f"an empty directory or one holding this same run; it holds a run "
                                 f"with {', '.join(diff)}; choose a new --output_dir")
        else:
            with self.writing(self.run_json):
                write_json(self.run_json, identity)

    @contextlib.contextmanager
    def writing(self, path=None):
        """A full disk or a folder made read-only mid-run is the user's to fix: one line, not a
        traceback (the atomic writes leave the previous file in place). A full disk, also as
        TensorFlow's writers report it, is DiskFullError naming `path` (default: the folder)."""
        try:
            with naming_disk_full(path or self.path):
                yield
        except OSError as e:
            raise UsageError("output_dir", self.path,
                             f"a writable directory with free space ({e.strerror or e})") from e

    def summary_writer(self):
        """TensorBoard's writer for logs/, checked at each flush (see EventWriter)."""
        with self.writing(self.logs):
            return EventWriter(self.logs)

    # ------------------------------------------------------------------------- history

    def history(self):
        return self.read_json(self.history_json, list) if os.path.exists(self.history_json) else []

    def append_history(self, row):
        """An epoch re-run after a kill replaces its row."""
        rows = [r for r in self.history() if r["epoch"] < row["epoch"]]
        with self.writing(self.history_json):
            write_json(self.history_json, rows + [row])

    # ------------------------------------------------------------ best validation scores

    def _val_scores_path(self, epoch):
        return os.path.join(self.checkpoints, f"best_val_scores_epoch{epoch}.npz")

    def save_best_val_scores(self, epoch, scores):
        """Kept with the best checkpoint, so the final evaluation need not score validation again
        (scoring is deterministic; for AnoGAN's search that saves a quarter of the evaluation)."""
        path = self._val_scores_path(epoch)
        with self.writing(path):
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

    def write_scores(self, val_scores, val_labels, test_scores, test_labels, val_index=None,
                     test_index=None):
        indices = {} if val_index is None else {"val_index": val_index, "test_index": test_index}
        with self.writing(self.scores_npz):
            write_npz(self.scores_npz, val_scores=val_scores, val_labels=val_labels,
                      test_scores=test_scores, test_labels=test_labels, **indices)

    def scores(self):
        return dict(np.load(self.scores_npz))

    def write_results(self, results):
        with self.writing(self.results_json):
            write_json(self.results_json, results)

    def results(self):
        return self.read_json(self.results_json, dict)


class EventWriter:
    """tf.summary's file writer, which raises a full disk as an OpError at some flushes and loses
    events without a word at others (nothing written, or a torn last record). All are
    DiskFullError naming the event file: each write is flushed, then the file must have grown
    and end on a whole TFRecord (length, CRC, data, CRC)."""

    def __init__(self, logs):
        import tensorflow as tf

        self.logs = logs
        os.makedirs(logs, exist_ok=True)
        before = set(glob.glob(os.path.join(glob.escape(logs), "events.out.tfevents.*")))
        self._writer = tf.summary.create_file_writer(logs)
        new = set(glob.glob(os.path.join(glob.escape(logs), "events.out.tfevents.*"))) - before
        self.path = new.pop() if len(new) == 1 else None  # unknown: not checked
        self._checked = 0  # end of the last whole record seen

    def write(self, step, scalars=None, images=None):
        """Scalars {tag: value} and PNG images {tag: bytes} at `step`, flushed and checked."""
        import tensorflow as tf

        if not scalars and not images:
            return
        with naming_disk_full(self.path or self.logs):
            with self._writer.as_default(step=step):
                for tag, value in (scalars or {}).items():
                    tf.summary.scalar(tag, value)
                for tag, png in (images or {}).items():
                    tf.summary.image(tag, tf.image.decode_png(png)[tf.newaxis])
            self._writer.flush()
        if self.path is None:
            return
        end = self._checked
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while end < size:
                f.seek(end)
                header = f.read(8)
                if len(header) < 8:
                    break
                end += 8 + 4 + struct.unpack("<Q", header)[0] + 4
        if end != size or size == self._checked:
            from anomaly_toolbox.errors import DiskFullError

            raise DiskFullError(self.path, "TensorFlow's event writer wrote a partial record"
                                if end != size else "TensorFlow's event writer wrote nothing")
        self._checked = end


def differences(old, new):
    """`key: old -> new` for each key whose value differs: how a refusal names what changed."""
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def _dotted(d, prefix=""):
    """{"config": {"epochs": 2}} -> {"config.epochs": 2}: differences named by their full key."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out
