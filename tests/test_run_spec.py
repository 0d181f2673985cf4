"""RunSpec: run.json, the SavedModel metadata and results.json of a run all say what the spec it
was trained from says, and RunSpec.read gives that spec back; one threshold-rule parser."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import DATA_DIR

from anomaly_toolbox.errors import UsageError


def _resolve(model, dataset, anomalous_class, output_dir, **options):
    from anomaly_toolbox.run.spec import RunSpec

    return RunSpec.resolve(model, dataset, anomalous_class, str(output_dir), **options)


def test_files_of_a_run_agree_with_its_spec_and_read_round_trips(tiny_run):
    from anomaly_toolbox.data import data_identity
    from anomaly_toolbox.data.datasets import IDX_FILES
    from anomaly_toolbox.run import export
    from anomaly_toolbox.run.spec import RunSpec

    run_dir, results = tiny_run("ganomaly")
    spec = _resolve("ganomaly", "mnist", 3, run_dir, config=str(run_dir.parent / "tiny.json"),
                    data_dir=DATA_DIR, limit=300)  # as conftest's tiny_run trained it
    recorded = json.loads((run_dir / "run.json").read_text())
    assert recorded == {**spec.identity(), "data": data_identity(results["data_source"])}
    assert set(recorded["data"]["sha256"]) == {f for pair in IDX_FILES.values() for f in pair}
    _, metadata = export.load(str(run_dir / "saved_model"))
    assert {k: metadata[k] for k in spec.saved_model_metadata(1)} == spec.saved_model_metadata(1)
    assert metadata["threshold_rule"] == spec.threshold == "f1"
    assert metadata["image_size"] == spec.image_size == 32
    written = json.loads((run_dir / "results.json").read_text())
    assert written == results and {k: written[k] for k in spec.results()} == spec.results()
    assert written["config"] == {"profile": "custom", "epochs": 2, "batch_size": 32,
                                 "precision": "float32", "image_size": 32,
                                 "model": dict(spec.hyperparameters)}
    read = RunSpec.read(run_dir, data_dir=DATA_DIR)
    assert read == spec and RunSpec.read(str(run_dir)).data_dir is None


def test_the_spec_is_frozen_and_resolved_once(tmp_path):
    spec = _resolve("ganomaly", "mnist", np.int64(4), tmp_path, epochs=3, batch_size=16,
                    precision="float32", threshold="fpr:0.05", train_seed=2)
    assert spec.anomalous_class == 4 and type(spec.anomalous_class) is int
    assert (spec.epochs, spec.batch_size, spec.profile, spec.threshold) == (3, 16, "defaults",
                                                                          "fpr:0.05")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.epochs = 4
    with pytest.raises(TypeError):
        spec.hyperparameters["latent_dim"] = 2
    assert json.loads(json.dumps(spec.identity())) == spec.identity()  # what run.json holds


def test_a_folder_run_records_no_class_and_a_portable_dataset_name(tmp_path):
    spec = _resolve("ganomaly", f"folder:{tmp_path}/my_images/", 5, tmp_path / "run")
    assert spec.anomalous_class is None and spec.protocol == "folder"
    assert spec.identity()["dataset"] == f"folder:{tmp_path}/my_images/"  # where it lay
    assert spec.results()["dataset"] == "folder:my_images"  # what it was
    assert spec.saved_model_metadata(3)["channels"] == 3


def test_an_old_kept_result_reads_with_what_it_trained_with(tmp_path):
    """A kept benchmark cell holds results.json only, from before image_size and precision."""
    from anomaly_toolbox.run.spec import RunSpec

    old = {"model": "egbad", "dataset": "mnist", "protocol": "official", "anomalous_class": 1,
           "train_seed": 0, "split_seed": 0, "limit": None,
           "config": {"profile": "cpu", "epochs": 2, "batch_size": 64, "model": {"latent_dim": 8}},
           "validation": {"auprc": 0.5, "threshold": 1.0, "threshold_target_fpr": 0.02}}
    (tmp_path / "results.json").write_text(json.dumps(old))
    spec = RunSpec.read(tmp_path)
    assert (spec.image_size, spec.precision, spec.threshold) == (32, "float32", "fpr:0.02")
    assert spec.identity() == {**{k: old[k] for k in spec.identity()},
                               "config": {**old["config"], "image_size": 32,
                                          "precision": "float32"}}
    with pytest.raises(UsageError, match="invalid run_dir"):
        RunSpec.read(tmp_path / "nothing")


@pytest.mark.parametrize("rule", ["best", "fpr", "fpr:1", "fpr:0", "fpr:x", "f1 ", None])
def test_a_bad_threshold_rule_is_one_error_naming_the_argument(tmp_path, rule):
    with pytest.raises(UsageError, match=r"^invalid threshold: .*f1 or fpr:RATE"):
        _resolve("ganomaly", "mnist", 0, tmp_path / "run", threshold=rule)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("rule", ["f1", "fpr:0.05"])
@pytest.mark.parametrize("anomalies", [True, False])
def test_the_rule_applied_recorded_and_compared_is_one(rule, anomalies):
    """validation_threshold's rule, what results.json records of it and what a re-run compares
    (metrics.applied_rule) agree; without validation anomalies f1 is fpr:0.01."""
    from anomaly_toolbox import metrics

    scores = np.random.default_rng(0).normal(size=200)
    labels = (np.arange(200) % 5 == 0).astype(int) if anomalies else np.zeros(200, int)
    threshold = metrics.validation_threshold(scores, labels, rule)
    recorded = metrics.recorded_rule(metrics.evaluate(scores, labels, threshold))
    expected = rule if anomalies or rule != "f1" else "fpr:0.01"
    assert threshold.rule == recorded == metrics.applied_rule(rule, anomalies) == expected


def test_numpy_integers_are_taken_as_plain_ints(tmp_path):
    """A loop over np.arange gives numpy integers: run.json must still be JSON."""
    from anomaly_toolbox.run.spec import RunSpec

    spec = RunSpec.resolve("ganomaly", "mnist", np.int64(3), tmp_path, epochs=np.int64(2),
                           batch_size=np.int32(16), train_seed=np.int64(1),
                           split_seed=np.uint32(2), limit=np.int64(300))
    for key in ("anomalous_class", "epochs", "batch_size", "train_seed", "split_seed", "limit"):
        assert type(getattr(spec, key)) is int, key
    json.dumps(spec.identity())


def test_a_run_folder_written_before_data_hashes_were_recorded_still_resumes(tmp_path):
    from anomaly_toolbox.run.rundir import RunDir

    identity = {"model": "ganomaly", "dataset": "mnist", "config": {"image_size": 32}}
    run = RunDir(str(tmp_path))
    run.claim(identity)  # as written before run.json held "data"
    run.claim(identity, data={"dataset": "mnist", "sha256": {"t10k-images-idx3-ubyte.gz": "ab"}})
    assert json.loads((tmp_path / "run.json").read_text()) == identity
    fresh = RunDir(str(tmp_path / "fresh"))
    fresh.claim(identity, data={"sha256": "ab"})
    with pytest.raises(UsageError, match=r"data\.sha256: 'ab' -> 'cd'"):
        fresh.claim(identity, data={"sha256": "cd"})
