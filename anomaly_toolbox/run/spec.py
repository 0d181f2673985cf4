"""`RunSpec`: what one training run is, resolved once from flags or keywords, the profile or
config file, and defaults, every value checked; then read back from a run folder.

Every file that describes a run is written from it, with the keys and values it always had:
  run.json                  identity()                (the folder's identity, checked on resume)
  saved_model metadata      saved_model_metadata(...) (export.save adds the input handling)
  results.json              results(...)              (the identity with a portable dataset name,
                                                       plus what the run measured)
Re-export, the ensemble and the benchmarks' sweep read a run back with `RunSpec.read(run_dir)`.
How a run executes (verbosity, distribution strategy, the analysis-only test curve) is not part
of it: the same run may resume under another strategy.
"""

import dataclasses
import json
import numbers
import os
import types

from anomaly_toolbox.data import FOLDER  # "folder:PATH": a dataset of your own images

# what run folders written before a setting existed trained with (see RunDir.claim)
OLD_DEFAULTS = {"image_size": 32, "precision": "float32"}
SEED_MAX = 2**32 - 1  # what numpy's and Keras' seeding take


@dataclasses.dataclass(frozen=True)
class RunSpec:
    model: str
    dataset: str  # "mnist", "fashion_mnist" or "folder:PATH" (the path as given)
    anomalous_class: int | None  # None for a folder dataset (it has no classes)
    protocol: str  # "pooled" or "official"; "folder" for a folder dataset
    output_dir: str
    epochs: int
    batch_size: int
    image_size: int
    precision: str  # concrete: "auto" is resolved on this machine
    profile: str | None  # the config file's name for itself, "custom" or "defaults"
    hyperparameters: types.MappingProxyType  # the model's, every key of its DEFAULTS
    train_seed: int = 0
    split_seed: int = 0
    limit: int | None = None
    threshold: str = "f1"  # "f1" or "fpr:RATE"; see metrics.validation_threshold
    data_dir: str | None = None  # where the data is read from: not part of the identity

    @property
    def is_folder(self):
        return self.dataset.startswith(FOLDER)

    @property
    def config(self):
        """The resolved config as run.json, the metadata and results.json record it."""
        return {"profile": self.profile, "epochs": self.epochs, "batch_size": self.batch_size,
                "precision": self.precision, "image_size": self.image_size,
                "model": dict(self.hyperparameters)}

    @property
    def portable_dataset(self):
        """folder:/home/me/imgs -> folder:imgs: results say what the data was, not where it lay."""
        if not self.is_folder:
            return self.dataset
        return FOLDER + (os.path.basename(os.path.normpath(self.dataset[len(FOLDER):]))
                         or "folder")

    # -------------------------------------------------------------- the files written from it

    def identity(self):
        """run.json: what a run folder belongs to; resuming with any difference is refused."""
        return {"model": self.model, "dataset": self.dataset, "protocol": self.protocol,
                "anomalous_class": self.anomalous_class, "train_seed": self.train_seed,
                "split_seed": self.split_seed, "limit": self.limit, "config": self.config}

    def saved_model_metadata(self, channels):
        """The SavedModel's description of its run (export.save adds the input handling)."""
        return {"model": self.model, "dataset": self.dataset,
                "anomalous_class": self.anomalous_class, "protocol": self.protocol,
                "config": self.config, "channels": channels}

    def results(self, **measured):
        """results.json: the identity, with a portable dataset name, and what was measured."""
        return {**self.identity(), "dataset": self.portable_dataset, **measured}

    # ------------------------------------------------------------------------- resolving

    @classmethod
    def resolve(cls, model, dataset, anomalous_class, output_dir, protocol="pooled",
                profile=None, config=None, epochs=None, batch_size=None, image_size=None,
                precision=None, train_seed=0, split_seed=0, limit=None, threshold="f1",
                data_dir=None):
        """From keywords (the train command's flags), the profile or config file and defaults.
        A bad value is a UsageError naming it; the anomalous class, protocol and limit are
        checked against the data when it is loaded (data.load_splits)."""
        from anomaly_toolbox import config as config_lib, models, profiles
        from anomaly_toolbox.metrics import parse_threshold

        parse_threshold(threshold)
        model_cls = models.get(model)
        cfg = config_lib.resolve(model_cls, profiles.config_file(model, dataset, profile, config),
                                 epochs, batch_size, precision, image_size)
        folder = str(dataset).startswith(FOLDER)
        return cls(model=model, dataset=dataset,
                   anomalous_class=None if folder else _label(anomalous_class),
                   protocol="folder" if folder else protocol, output_dir=str(output_dir),
                   **_from_config(cfg), train_seed=_seed("train_seed", train_seed),
                   split_seed=_seed("split_seed", split_seed),
                   limit=limit if limit is None else _limit(limit), threshold=threshold, data_dir=data_dir)

    @classmethod
    def from_identity(cls, identity, output_dir, threshold="f1", data_dir=None):
        """From a run.json (or results.json) dict; runs written before a config key existed
        get what they trained with (OLD_DEFAULTS)."""
        return cls(model=identity["model"], dataset=identity["dataset"],
                   anomalous_class=identity["anomalous_class"], protocol=identity["protocol"],
                   output_dir=str(output_dir),
                   **_from_config({**OLD_DEFAULTS, **identity["config"]}),
                   train_seed=identity["train_seed"], split_seed=identity["split_seed"],
                   limit=identity["limit"], threshold=threshold, data_dir=data_dir)

    @classmethod
    def read(cls, run_dir, data_dir=None, results=None):
        """The spec of the run in `run_dir` (a path or RunDir): run.json, or results.json for a
        kept result without one. `threshold` is the rule the finished run applied (f1 without
        validation anomalies is fpr:0.01), "f1" before it finished. `results`: its results.json,
        when the caller has read it already."""
        from anomaly_toolbox.errors import UsageError
        from anomaly_toolbox.metrics import recorded_rule
        from anomaly_toolbox.run.rundir import RunDir

        run_dir = RunDir(run_dir)
        if results is None and run_dir.finished():
            results = run_dir.results()
        try:
            identity = run_dir.identity() if os.path.exists(run_dir.run_json) else results
            threshold = recorded_rule(results["validation"]) if results else "f1"
            return cls.from_identity(identity, run_dir.path, threshold, data_dir)
        except (TypeError, KeyError, json.JSONDecodeError) as e:
            raise UsageError("run_dir", run_dir.path, "the folder of a run written by "
                             "anomaly_toolbox.train (run.json or results.json)") from e


def _seed(name, value):
    """Checked here, not by numpy or Keras deep in training, after run.json is written."""
    from anomaly_toolbox.errors import check_integer

    return check_integer(name, value, 0, SEED_MAX)


def _limit(limit):
    from anomaly_toolbox import data

    data.check_limit(limit)
    return int(limit)  # numpy's integers too: run.json is JSON


def _label(anomalous_class):
    """A whole-number class label as int (numpy's, 3.0); anything else is left for the data's
    check, which names it (the classes are the data's)."""
    if (isinstance(anomalous_class, numbers.Real) and not isinstance(anomalous_class, bool)
            and float(anomalous_class).is_integer()):
        return int(anomalous_class)
    return anomalous_class


def _from_config(cfg):
    return {"epochs": cfg["epochs"], "batch_size": cfg["batch_size"],
            "image_size": cfg["image_size"], "precision": cfg["precision"],
            "profile": cfg.get("profile"),
            "hyperparameters": types.MappingProxyType(dict(cfg["model"]))}
