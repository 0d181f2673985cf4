"""The notebook API: fit a run (with a false-alarm-rate threshold), load it, score arrays of any
natural dtype and shape, a folder, and read the results."""

import json
import os
import re
import sys

import numpy as np
import pytest
from conftest import DATA_DIR

import anomaly_toolbox as atb
from anomaly_toolbox.errors import UsageError

TINY = {"epochs": 1, "batch_size": 32, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    config = tmp / "tiny.json"
    config.write_text(json.dumps(TINY))
    results = atb.fit("ganomaly", "mnist", 4, tmp / "run", config=str(config), limit=200,
                      data_dir=DATA_DIR, verbose=0, threshold="fpr:0.05")
    return tmp / "run", results


IMPORT_ONLY = """
import os, sys
before = dict(os.environ)
import anomaly_toolbox, anomaly_toolbox.api
anomaly_toolbox.fit, anomaly_toolbox.load
assert 'tensorflow' not in sys.modules, 'tensorflow imported'
assert dict(os.environ) == before, 'environment changed'
loaded = sorted(m for m in sys.modules if m.startswith('anomaly_toolbox'))
assert loaded == ['anomaly_toolbox', 'anomaly_toolbox.api'], loaded
"""


def test_importing_the_package_and_api_imports_no_tensorflow_and_sets_nothing():
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}  # the suite's
    proc = subprocess.run([sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert not hasattr(atb.api, "train")  # renamed fit: anomaly_toolbox.train is the command


def test_train_records_the_threshold_rule_everywhere(trained):
    run_dir, results = trained
    assert results == atb.read_results(run_dir)
    assert results["validation"]["threshold_target_fpr"] == 0.05
    scores = np.load(run_dir / "scores.npz")
    normal = scores["val_scores"][scores["val_labels"] == 0]
    assert np.mean(normal >= results["validation"]["threshold"]) <= 0.05 + 1 / len(normal)
    detector = atb.load(run_dir / "saved_model")
    assert detector.metadata["threshold_rule"] == "fpr:0.05" and detector.metadata["model"] == "ganomaly"
    assert detector.threshold == pytest.approx(results["validation"]["threshold"])


def test_detector_scores_any_natural_dtype_and_one_image(trained, images):
    detector = atb.load(trained[0] / "saved_model")
    x = images[0][:5]
    reference = detector.score(x)
    assert reference.shape == (5,) and reference.dtype == np.float32
    for dtype in (np.int16, np.int32, np.int64, np.uint16, np.float16, np.float32, np.float64):
        np.testing.assert_allclose(detector.score(x.astype(dtype)), reference, rtol=1e-5)
    np.testing.assert_allclose(detector.score(x[2]), reference[2:3], rtol=1e-5)
    np.testing.assert_allclose(detector.score(x[..., None], batch_size=2), reference, rtol=1e-5)


def test_out_of_range_pixels_are_named_with_the_values_given(trained, images):
    """A uint64 2**63 was cast to int64 first and named as a negative value; a float64 or
    longdouble 1e300 was cast to float32 first and named as inf."""
    detector = atb.load(trained[0] / "saved_model")
    x = images[0][:2].astype(np.uint64)
    x[0, 0, 0] = 2 ** 63
    with pytest.raises(UsageError, match=r"got values from 0 to 9.22337e\+18\)$"):
        detector.score(x)
    for dtype in (np.float64, np.longdouble):
        y = images[0][:2].astype(dtype)
        y[1, 2, 3] = 1e300
        with pytest.raises(UsageError, match=r"a float32 holds; got values from 0 to 1e\+300\)$"):
            detector.score(y)


def test_detector_scores_a_folder(trained, images, tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(images[0][i]).save(tmp_path / f"{i}.png")
    detector = atb.load(trained[0] / "saved_model")
    names, scores = detector.score_folder(tmp_path, batch_size=2)
    assert names == ["0.png", "1.png", "2.png"]
    np.testing.assert_allclose(scores, detector.score(images[0][:3]), rtol=1e-5)


def test_bad_threshold_and_missing_results_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="invalid threshold: 'fpr:2'"):
        atb.fit("ganomaly", "mnist", 4, tmp_path / "run", threshold="fpr:2")
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="invalid run_dir"):
        atb.read_results(tmp_path)


@pytest.mark.parametrize("text, fault", [('{"model": "gan', "not valid JSON"),
                                          ("[1, 2]\n", "it holds \\[1, 2\\] where a JSON object"),
                                          (b"\xff\xfe", "not valid JSON")])
def test_a_damaged_results_json_is_one_data_error_naming_it(tmp_path, text, fault):
    """A results.json cut short (a copy stopped half-way) or edited by hand: a JSONDecodeError
    or UnicodeDecodeError from json.load, or a list returned as the results, before."""
    from anomaly_toolbox.errors import DataError

    path = tmp_path / "results.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: damaged, {fault}"):
        atb.read_results(tmp_path)


def test_a_misspelt_keyword_names_fit_and_what_was_meant(tmp_path):
    """It once raised TypeError naming RunSpec.resolve(), an internal function."""
    with pytest.raises(TypeError, match=r"^fit\(\) got an unexpected keyword argument 'profle'; "
                                        r"did you mean 'profile'\?$"):
        atb.fit("ganomaly", "mnist", 1, tmp_path / "run", profle="cpu")
    with pytest.raises(TypeError, match=r"'zzz' \(expected some of .*batch_size.*verbose"):
        atb.fit("ganomaly", "mnist", 1, tmp_path / "run", zzz=1)
    assert not (tmp_path / "run").exists()


def test_no_output_dir_or_a_dataset_that_is_no_name_is_refused(tmp_path, monkeypatch):
    """fit(..., None) trained into ./None; a pathlib dataset was an AttributeError."""
    monkeypatch.chdir(tmp_path)
    for output_dir in (None, ""):
        with pytest.raises(UsageError, match="invalid output_dir"):
            atb.fit("ganomaly", "mnist", 4, output_dir, profile="cpu",
                    threshold="fpr:2")  # refused first: it trained into ./None
    from pathlib import Path

    with pytest.raises(UsageError, match="invalid dataset: PosixPath"):
        atb.fit("ganomaly", Path("mnist"), 4, tmp_path / "run", profile="cpu")
    assert not os.listdir(tmp_path)


def test_a_bool_is_no_class(tmp_path):
    """True == 1: fit trained digit 1 as the anomaly and recorded `true` as its class."""
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    for label in (True, np.True_):
        with pytest.raises(UsageError, match="invalid anomalous_class: (np.)?True"):
            atb.fit("ganomaly", "mnist", label, tmp_path / "run", config=str(tmp_path / "tiny.json"),
                    limit=200, data_dir=DATA_DIR, verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_folder_dataset_refuses_what_it_would_ignore(tmp_path):
    """fit took a class and a protocol for a folder dataset and ignored both, where the CLI
    refuses the flags: the run trained on the folder's own split without a word."""
    folder = f"folder:{tmp_path / 'images'}"
    with pytest.raises(UsageError, match=r"invalid anomalous_class: 3 \(expected None with "):
        atb.fit("ganomaly", folder, 3, tmp_path / "run", profile="cpu")
    with pytest.raises(UsageError, match=r"invalid protocol: 'official' \(expected no protocol"):
        atb.fit("ganomaly", folder, None, tmp_path / "run", profile="cpu", protocol="official")
    assert not (tmp_path / "run").exists()


def test_verbose_is_0_1_or_2_as_the_cli_takes(tmp_path, monkeypatch):
    """verbose="x" trained silently (Keras shows progress only for 1 and 2) and True as 1."""
    from anomaly_toolbox.run import training

    monkeypatch.setattr(training, "load_splits", lambda *a, **k: pytest.fail("data read"))
    for bad in ("x", True, 3, "auto"):
        with pytest.raises(UsageError, match=rf"^invalid verbose: {bad!r} \(expected 0, 1 or 2\)$"):
            atb.fit("ganomaly", "mnist", 4, tmp_path / "run", profile="cpu", verbose=bad)
    for name in ("deterministic", "record_test_curve"):  # "no" was true, silently
        with pytest.raises(UsageError, match=rf"^invalid {name}: 'no' \(expected True or False\)$"):
            atb.fit("ganomaly", "mnist", 4, tmp_path / "run", profile="cpu", **{name: "no"})
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match=r"^invalid saved_model: None \(expected a SavedModel "):
        atb.load(None)  # was named as the string 'None'


def test_a_config_dict_is_checked_and_resolved_as_its_file(tmp_path, monkeypatch):
    """config={...} was a TypeError from os.stat deep inside, and read_results(None) one from
    os.path.join: a dict is what a notebook writes instead of a file."""
    from anomaly_toolbox.run import training

    monkeypatch.setattr(training, "run", lambda spec, **execution: spec)  # no training
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    from_file = atb.fit("ganomaly", "mnist", 4, tmp_path / "run", config=str(tmp_path / "tiny.json"))
    from_dict = atb.fit("ganomaly", "mnist", 4, tmp_path / "run", config=TINY)
    assert from_dict == from_file and from_dict.config["profile"] == "custom"
    as_written = {**TINY, "batch_size": np.int64(TINY["batch_size"]),  # in a notebook
                  "model": {**TINY["model"], "filters": tuple(TINY["model"]["filters"])}}
    assert atb.fit("ganomaly", "mnist", 4, tmp_path / "run", config=as_written) == from_file
    for bad, message in (({"epochs": 0}, "invalid epochs: 0"),
                         ({"model": {"latent_dim": "8"}}, "invalid config: latent_dim: '8'"),
                         ({"epoch": 1}, "invalid config: key: 'epoch' (expected one of"),
                         ([TINY], "invalid config: [{"),
                         ({"epochs": {1, 2}}, "(expected a dict of JSON values (set is not")):
        with pytest.raises(UsageError, match=re.escape(message)):
            atb.fit("ganomaly", "mnist", 4, tmp_path / "run", config=bad)
    for bad in (None, 3):
        with pytest.raises(UsageError, match=rf"^invalid run_dir: {bad} \(expected a finished"):
            atb.read_results(bad)


def test_a_masked_array_with_masked_pixels_is_refused(saved_model):
    """np.asarray dropped the mask: the values under it were scored as if they were pixels."""
    detector = atb.load(saved_model)
    x = (np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256).astype(np.uint8)
    masked = np.ma.masked_array(x, mask=x > 250)
    for method in (detector.score, detector.anomaly_map):
        with pytest.raises(UsageError, match=r"^invalid images: 'MaskedArray' \(expected an array "
                                             r"without masked pixels \(30 of 1568 are\)"):
            method(masked)
    np.testing.assert_array_equal(detector.score(np.ma.masked_array(x)), detector.score(x))
