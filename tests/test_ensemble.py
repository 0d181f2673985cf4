"""Ensembles of tiny finished runs (conftest's shared tiny_run): the SavedModel equals the offline
combination, per image."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA_DIR, score_in_fresh_process

from anomaly_toolbox.errors import UsageError


@pytest.fixture(scope="module")
def members(tiny_run):
    """The session's tiny GANomaly and autoencoder runs on class 3 (read-only)."""
    return {"dirs": [str(tiny_run(name)[0]) for name in ("ganomaly", "autoencoder")]}


@pytest.fixture(scope="module")
def built(members, tmp_path_factory):
    from anomaly_toolbox.run import ensemble

    out = tmp_path_factory.mktemp("ensemble") / "ensemble"
    return {"dir": out, "results": ensemble.build(members["dirs"], str(out))}


def test_standardisation_uses_validation_normals_only():
    from anomaly_toolbox.run.ensemble import robust_scale

    scores = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 1000.0])
    labels = np.array([0, 0, 0, 0, 0, 1])  # the anomaly's 1000 must not move anything
    centre, scale = robust_scale(scores, labels)
    assert centre == 3.0 and scale == pytest.approx(1.4826 * 1.0)


def test_saved_model_equals_offline_combination_and_is_batch_independent(built, mnist, tmp_path):
    from anomaly_toolbox.data import load_splits

    splits = load_splits("mnist", 3, data_dir=DATA_DIR, limit=300)  # as tiny_run
    stored = np.load(built["dir"] / "scores.npz")
    fresh = score_in_fresh_process(built["dir"] / "saved_model", splits.x_test, tmp_path)
    np.testing.assert_allclose(fresh, stored["test_scores"], rtol=1e-4, atol=1e-4)
    import tensorflow as tf

    loaded = tf.saved_model.load(str(built["dir"] / "saved_model"))
    one_by_one = np.concatenate([loaded.score(splits.x_test[i:i + 1]).numpy() for i in range(3)])
    # batch 1 against the whole split: other oneDNN kernels, and z = (s - median) / scale turns a
    # member's ~1e-6 relative rounding into up to ~1e-4 (seen on an AVX2 machine: 2.8e-6 absolute)
    np.testing.assert_allclose(one_by_one, fresh[:3], rtol=1e-4, atol=1e-5)
    r = built["results"]
    assert [m["model"] for m in r["members"]] == ["ganomaly", "autoencoder"]
    assert r["test"]["threshold"] == r["validation"]["threshold"]
    from anomaly_toolbox.metrics import ranking_metrics
    assert ranking_metrics(fresh, splits.y_test)["auprc"] == pytest.approx(r["test"]["auprc"],
                                                                          abs=1e-3)


def test_saved_model_looks_like_a_single_run_and_rejects_bad_input(built):
    import tensorflow as tf

    from anomaly_toolbox.run import export

    loaded, metadata = export.load(str(built["dir"] / "saved_model"))
    assert metadata["model"] == "ensemble" and metadata["anomalous_class"] == 3
    assert float(loaded.threshold.numpy()) == pytest.approx(built["results"]["test"]["threshold"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or inf"):
        loaded.score(np.full((2, 28, 28), np.nan, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="channel"):
        loaded.score(np.zeros((2, 28, 28, 3), np.uint8))


def test_the_saved_model_takes_every_input_a_single_run_takes(saved_model, tmp_path):
    """A 0/1 uint8 mask (a single run scores it; cast to float32, members refused it as a batch
    already scaled to 0..1), one 2-D image, int32 / int64 / float64 pixels: as a single run."""
    import tensorflow as tf

    from anomaly_toolbox.run import export
    from anomaly_toolbox.run.ensemble import EnsembleModule

    single, metadata = export.load(str(saved_model))
    export.save_module(EnsembleModule([single, single], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], 0.5,
                                      {**metadata, "model": "ensemble"}), str(tmp_path / "e"))
    loaded = tf.saved_model.load(str(tmp_path / "e"))  # z = s: centre 0, scale 1
    mask = (np.arange(2 * 32 * 32).reshape(2, 32, 32) % 2).astype(np.uint8)
    expected = single.score(mask).numpy()
    for x in (mask, mask.astype(np.int32), mask.astype(np.int64)):
        np.testing.assert_allclose(loaded.score(x).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(loaded.score(mask[0]).numpy(), expected[:1], rtol=1e-5)
    gray = (mask * 200).astype(np.float64)
    np.testing.assert_allclose(loaded.score(gray).numpy(), single.score(gray).numpy(), rtol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixels on 0..255"):
        loaded.score(mask.astype(np.int32) * 300)


def test_the_output_is_never_inside_a_saved_model(saved_model, tmp_path):
    """A member's saved_model/ens would ship inside it and be deleted with it on re-export;
    refused before the members are read, as export refuses it."""
    from anomaly_toolbox.run import ensemble

    inside = saved_model / "ens"
    with pytest.raises(UsageError, match=r"invalid output_dir: .*outside any SavedModel"):
        ensemble.build([str(tmp_path / "a"), str(tmp_path / "b")], str(inside))
    assert not inside.exists()


def test_the_threshold_rule_is_the_ensembles_own(members, tmp_path):
    from anomaly_toolbox.run import ensemble, export

    results = ensemble.build(members["dirs"], str(tmp_path / "fpr"), threshold_rule="fpr:0.05")
    loaded, metadata = export.load(str(tmp_path / "fpr" / "saved_model"))
    assert metadata["threshold_rule"] == "fpr:0.05"  # not the members' "f1"
    val = np.load(tmp_path / "fpr" / "scores.npz")
    normals = val["val_scores"][val["val_labels"] == 0]
    assert float(loaded.threshold.numpy()) == pytest.approx(results["test"]["threshold"])
    assert np.mean(normals > float(loaded.threshold.numpy())) == pytest.approx(0.05, abs=0.02)
    with pytest.raises(UsageError, match="invalid threshold"):
        ensemble.build(members["dirs"], str(tmp_path / "bad"), threshold_rule="best")
    assert not (tmp_path / "bad").exists()


def test_a_finished_ensemble_is_not_rebuilt_with_another_threshold_rule(members, built, tmp_path):
    """Rebuilt in place with another --threshold, it silently replaced the detector and its
    results, where train refuses another rule for a finished run; killed before its results,
    it has no rule to keep and is rebuilt."""
    from anomaly_toolbox.run import ensemble

    kept = tmp_path / "kept"
    shutil.copytree(built["dir"], kept)
    before = {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match=r"it holds one with threshold: 'f1' -> 'fpr:0.05'; "
                                         r"choose a new --output_dir\)$"):
        ensemble.build(members["dirs"], str(kept), threshold_rule="fpr:0.05")
    assert {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()} == before
    (kept / "results.json").unlink()
    results = ensemble.build(members["dirs"], str(kept), threshold_rule="fpr:0.05")
    assert results["validation"]["threshold_target_fpr"] == 0.05


def test_val_auprc_weights_come_from_validation(members):
    from anomaly_toolbox.metrics import ranking_metrics
    from anomaly_toolbox.run import ensemble

    read = ensemble.read_members(members["dirs"])
    _, _, weights = ensemble.fit(read, "val_auprc")
    expected = [ranking_metrics(m["scores"]["val_scores"], m["scores"]["val_labels"])["auprc"]
                for m in read]
    assert weights == pytest.approx(expected)


def test_each_members_results_json_is_read_once(members, monkeypatch):
    """read_members read it twice: in RunSpec.read, then again for its data_source."""
    from anomaly_toolbox.run import ensemble
    from anomaly_toolbox.run.rundir import RunDir

    read, real = [], RunDir.read_json
    monkeypatch.setattr(RunDir, "read_json", lambda self, path, *kind: read.append(path)
                        or real(self, path, *kind))
    ensemble.read_members(members["dirs"])
    assert sorted(p for p in read if p.endswith("results.json")) == \
        sorted(os.path.join(d, "results.json") for d in members["dirs"])


def test_an_ensemble_listed_as_a_member_is_named_as_one(members, built, tmp_path):
    """It was refused as 'expected a finished run folder', which it is."""
    from anomaly_toolbox.run import ensemble

    with pytest.raises(UsageError, match="^" + re.escape(f"invalid members: '{built['dir']}' "
                                                   "(expected a run folder; an ensemble cannot")):
        ensemble.build([members["dirs"][0], str(built["dir"])], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_mix_of_runs_is_refused_naming_the_field(members, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(members["dirs"][1], other)
    for name in ("run.json", "results.json"):  # a run of another class, as RunSpec.read sees it
        described = json.loads((other / name).read_text())
        described["anomalous_class"] = 4
        (other / name).write_text(json.dumps(described))
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.ensemble",
                           f"--members={members['dirs'][0]},{other}",
                           f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True)
    assert proc.returncode == 2 and "same anomalous_class" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_output_is_never_a_member_or_a_folder_of_other_files(members, built, tmp_path):
    from anomaly_toolbox.run import ensemble

    member = tmp_path / "member"  # a copy: were the check to fail, the shared run stays intact
    shutil.copytree(members["dirs"][0], member)
    kept = (member / "results.json").read_text()
    with pytest.raises(UsageError, match=r"invalid output_dir: .*it holds a 'ganomaly' run"):
        ensemble.build(members["dirs"], str(member))
    assert (member / "results.json").read_text() == kept
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat.png").write_bytes(b"mine")
    with pytest.raises(UsageError, match=r"it holds 1 other file\(s\)"):
        ensemble.build(members["dirs"], str(tmp_path / "pictures"))
    with pytest.raises(UsageError, match="invalid members: .*listed twice"):
        ensemble.build([members["dirs"][0]] * 2, str(tmp_path / "twice"))
    assert os.listdir(tmp_path / "pictures") == ["cat.png"] and not (tmp_path / "twice").exists()
    with pytest.raises(UsageError, match="an ensemble of these same members and weighting"):
        ensemble.build(members["dirs"], str(built["dir"]), weighting="val_auprc")


def test_the_same_ensemble_is_rebuilt_in_place_after_a_kill_whatever_the_paths(members, built,
                                                                              tmp_path):
    from anomaly_toolbox.run import ensemble

    killed = tmp_path / "killed"  # what a build killed before results.json (its last file) left
    shutil.copytree(built["dir"], killed)
    (killed / "results.json").unlink()
    relative = [os.path.relpath(d) for d in members["dirs"]]
    assert ensemble.build(relative, str(killed))["test"] == built["results"]["test"]
    assert json.loads((killed / "run.json").read_text())["members"][0]["run_dir"] == relative[0]


def test_the_same_members_in_another_order_rebuild_in_place_and_a_difference_is_named(
        members, built, tmp_path):
    """Another order was refused as 'it holds a 'ensemble' run', as was any other ensemble,
    without saying what differs."""
    from anomaly_toolbox.run import ensemble

    swapped = tmp_path / "swapped"
    shutil.copytree(built["dir"], swapped)
    results = ensemble.build(members["dirs"][::-1], str(swapped))
    assert [m["run_dir"] for m in results["members"]] == members["dirs"][::-1]
    assert results["test"]["auprc"] == pytest.approx(built["results"]["test"]["auprc"])
    with pytest.raises(UsageError, match=r"it holds an ensemble of these members with "
                                         r"weighting 'mean'\)$"):
        ensemble.build(members["dirs"], str(swapped), weighting="val_auprc")
    identity = json.loads((swapped / "run.json").read_text())
    identity["members"][0]["centre"] += 1  # as if that run were trained again
    (swapped / "run.json").write_text(json.dumps(identity))
    with pytest.raises(UsageError, match=re.escape(
            f"it holds an ensemble of other members ({members['dirs'][1]}, {members['dirs'][0]}: "
            f"a member is known by its scores)")):
        ensemble.build(members["dirs"], str(swapped))


def test_members_taking_fewer_image_sides_than_the_first_are_refused(members, tmp_path,
                                                                   monkeypatch):
    """The graph takes what its first member's metadata says (a benchmark model at 64 takes 28,
    32 and 64): a member that takes less would fail inside it at scoring time."""
    from anomaly_toolbox.run import ensemble, export

    real = export.load

    def load(path):
        loaded, metadata = real(path)
        first = path.startswith(members["dirs"][0])
        return loaded, {**metadata, "image_size": 64} if first else metadata

    monkeypatch.setattr(export, "load", load)
    with pytest.raises(UsageError, match=r"sides \(28, 32, 64\)\): list first the member"):
        ensemble.build(members["dirs"], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_ensemble_without_labelled_anomalies_says_what_it_could_not_do(members, tmp_path):
    """Members whose validation and test hold no anomalies: the CLI exited 0 printing nothing,
    and did not say that f1 fell back to fpr:0.01."""
    copies = []
    for i, member in enumerate(members["dirs"]):
        copies.append(tmp_path / f"member{i}")
        shutil.copytree(member, copies[-1])
        scores = dict(np.load(copies[-1] / "scores.npz"))
        scores["val_labels"], scores["test_labels"] = (np.zeros_like(scores["val_labels"]),
                                                       np.zeros_like(scores["test_labels"]))
        np.savez(copies[-1] / "scores.npz", **scores)
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.ensemble",
                           f"--members={copies[0]},{copies[1]}",
                           f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ensemble of 2: no test AUPRC or AUROC: "), proc.stdout
    assert "fpr:0.01: validation holds no anomalies, so --threshold=f1 could not be applied" \
        in proc.stdout
