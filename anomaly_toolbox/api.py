"""A small Python API for notebooks: fit a run, load a detector, score arrays or a folder,
read a run's results. Every function takes and returns plain Python / numpy values.

    import anomaly_toolbox as atb
    results = atb.fit("ganomaly", "mnist", 4, "runs/ganomaly_mnist_4", profile="cpu",
                      data_dir="../shared/data")
    detector = atb.load("runs/ganomaly_mnist_4/saved_model")
    scores = detector.score(images)            # numpy, (N,) raw scores, higher = more anomalous
    flags = scores >= detector.threshold

It reads inputs through the data layer (data/inputs.py) and never imports a command module
(train, score, ...): importing it imports no TensorFlow and touches no process state.
"""

import os

import numpy as np


def fit(model, dataset, anomalous_class, output_dir, **options):
    """Trains, evaluates and exports one run, exactly as `anomaly-toolbox train` does; returns
    the results dict (also written to output_dir/results.json). `options` are training.fit's
    keywords: profile="cpu" (a named budget, as the CLI's --profile) or config (a JSON file,
    or a dict of its keys, checked alike), epochs, batch_size, protocol, train_seed,
    split_seed, data_dir, limit, threshold ("f1" or "fpr:RATE"), verbose (0, 1 or 2),
    image_size, precision, and how the run executes: strategy, cpu_devices, deterministic
    and record_test_curve (True or False; as the CLI's flags of those names). A
    "folder:PATH" dataset takes anomalous_class=None and no protocol: its anomalies and its
    split are its own."""
    from anomaly_toolbox.run import training

    _check_keywords(options)
    _check_paths(dataset, output_dir)
    _check_folder(dataset, anomalous_class, options)
    return training.fit(model, dataset, anomalous_class, str(output_dir), **options)


def _check_keywords(options):
    """A misspelt keyword is TypeError naming fit() and the likely meant one, not an internal
    function's signature."""
    import difflib
    import inspect

    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.spec import RunSpec

    allowed = sorted({*inspect.signature(training.fit).parameters,
                      *inspect.signature(RunSpec.resolve).parameters}
                     - {"model", "dataset", "anomalous_class", "output_dir", "description"})
    for name in options:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, 1)
            raise TypeError(f"fit() got an unexpected keyword argument {name!r}"
                            + (f"; did you mean {close[0]!r}?" if close else
                               f" (expected some of {', '.join(allowed)})"))


def _check_paths(dataset, output_dir):
    """output_dir=None (or "") trained into a folder named "None" in (or into) the working
    directory, and a dataset that is no string was an AttributeError."""
    from anomaly_toolbox.errors import UsageError

    if not isinstance(dataset, str):
        raise UsageError("dataset", dataset, "a name: mnist, fashion_mnist or 'folder:PATH'")
    if not isinstance(output_dir, (str, os.PathLike)) or not os.fspath(output_dir):
        raise UsageError("output_dir", output_dir, "a folder for the run (str or pathlib.Path)")


def _check_folder(dataset, anomalous_class, options):
    """What a folder dataset would ignore is refused, as the CLI refuses the flags."""
    from anomaly_toolbox.data import FOLDER
    from anomaly_toolbox.errors import UsageError

    if not str(dataset).startswith(FOLDER):
        return
    if anomalous_class is not None:
        raise UsageError("anomalous_class", anomalous_class, "None with dataset='folder:PATH' "
                         "(PATH/test/anomalous/ holds its anomalies)")
    if "protocol" in options:
        raise UsageError("protocol", options["protocol"], "no protocol with "
                         "dataset='folder:PATH' (its split is its own)")


def read_results(run_dir):
    """The results.json of a finished run as a dict; a damaged one is DataError naming it."""
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.run.rundir import RunDir

    path = os.path.join(run_dir, "results.json") if isinstance(run_dir, (str, os.PathLike)) else ""
    if not os.path.isfile(path):  # "": None or a number, os.path.join's TypeError before
        raise UsageError("run_dir", run_dir, "a finished run folder holding results.json")
    return RunDir(run_dir).results()


def load(saved_model_dir):
    """A Detector for a SavedModel written by `fit` or `anomaly-toolbox train`."""
    return Detector(saved_model_dir)


class Detector:
    """A loaded SavedModel: `score(images)`, `anomaly_map(images)`, `score_folder(path)`,
    `threshold`, `metadata`."""

    def __init__(self, saved_model_dir):
        from anomaly_toolbox.data.inputs import input_rule, pixel_range
        from anomaly_toolbox.run import export

        if not isinstance(saved_model_dir, (str, os.PathLike)):  # None was named as 'None'
            from anomaly_toolbox.errors import UsageError

            raise UsageError("saved_model", saved_model_dir, "a SavedModel directory's path")
        self.path = os.fspath(saved_model_dir)
        self._loaded, self.metadata = export.load(self.path)
        self.channels, self._resize_to, self._sides = input_rule(self.metadata)
        self.pixel_range = pixel_range(self.metadata)  # the scale it was trained on

    @property
    def threshold(self):
        """The threshold chosen on validation (rule in metadata["threshold_rule"], "f1" if absent)."""
        return float(self._loaded.threshold.numpy())

    def score(self, images, batch_size=256, input_range=None):
        """Raw scores (N,) of a numpy array on the model's pixel scale (`pixel_range`, 0..255):
        (N, H, W[, C]) or one image (H, W[, C]), any integer or float dtype. A float array
        already scaled to 0..1 is refused unless input_range="0..1" asks to rescale it, and a
        masked array with masked pixels always (the model has no way to leave pixels out)."""
        return self._score_batches(self._batches(images, batch_size, input_range))

    def anomaly_map(self, images, batch_size=256, input_range=None):
        """Per-pixel maps (N, H, W) float32 of a numpy array, at its own resolution: |x - x^|
        averaged over channels (models that reconstruct: metadata["anomaly_map"]);
        `input_range` as in score."""
        from anomaly_toolbox.errors import UsageError

        if not self.metadata.get("anomaly_map"):
            raise UsageError("saved_model", self.path, "a model with anomaly_map")
        return np.concatenate([self._loaded.anomaly_map(b).numpy()
                               for b in self._batches(images, batch_size, input_range)])

    def _batches(self, images, batch_size, input_range=None):
        from anomaly_toolbox.data.inputs import array_batches, parse_input_range
        from anomaly_toolbox.errors import UsageError

        declared = parse_input_range(input_range, "input_range")
        if np.ma.is_masked(images):  # np.asarray would score the values under the mask
            raise UsageError("images", "MaskedArray", f"an array without masked pixels ("
                             f"{np.ma.count_masked(images)} of {np.size(images)} are): the model "
                             f"scores every pixel; fill them first, e.g. images.filled(0)")
        try:
            images = np.asarray(images)
        except ValueError as e:  # a ragged list
            raise UsageError("images", type(images).__name__, f"an array of images of one "
                             f"shape ({str(e).splitlines()[0][:120]})") from e
        return array_batches(images, self.channels, "images", self._sides,
                             batch_size, self.pixel_range, declared, 'input_range="{}"')[1]

    def score_folder(self, path, batch_size=256, input_range=None):
        """(file names, scores) of the PNG/JPEG images in `path`, one image file, or a .npy or
        IDX file, read batch by batch; `input_range` as in score (.npy files only)."""
        from anomaly_toolbox.data.inputs import parse_input_range, read_batches
        from anomaly_toolbox.errors import UsageError

        if not isinstance(path, (str, os.PathLike)):  # str(): an array printed whole as input
            raise UsageError("path", type(path).__name__, "a folder or image file's path "
                             "(score(images) takes arrays)")
        ids, batches = read_batches(os.fspath(path), self.channels, self._resize_to, batch_size,
                                    self._sides, self.pixel_range,
                                    parse_input_range(input_range, "input_range"),
                                    'input_range="{}"')
        return ids, self._score_batches(batches)

    def _score_batches(self, batches):
        return np.concatenate([self._loaded.score(b).numpy() for b in batches])
