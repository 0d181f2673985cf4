"""Train a tiny GANomaly through the CLI, export, score in a fresh process, resume, bad input."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA_DIR, assert_close, score_in_fresh_process

TINY_CONFIG = {"epochs": 2, "batch_size": 32, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def cli(module, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", f"anomaly_toolbox.{module}", *args],
                          capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    config = tmp / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    args = ["--model=ganomaly", "--dataset=mnist", "--anomalous_class=1", f"--config={config}",
            "--limit=300", f"--data_dir={DATA_DIR}", f"--output_dir={tmp / 'run'}", "--verbose=2"]
    proc = cli("train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"dir": tmp / "run", "args": args, "stdout": proc.stdout, "tmp": tmp,
            "results": json.loads((tmp / "run" / "results.json").read_text())}


def test_results_record_everything(run):
    r = run["results"]
    assert r["model"] == "ganomaly" and r["protocol"] == "pooled" and r["limit"] == 300
    assert r["config"]["model"]["filters"] == [4, 8, 16] and r["config"]["epochs"] == 2
    assert r["splits"]["train"] == 300 and r["splits"]["test"] == 300
    assert 0 < r["splits"]["test_anomalies"] < 300
    assert 1 <= r["selected_epoch"] <= 2
    for split in ("validation", "test"):
        assert set(r[split]) == {"auprc", "auroc", "threshold", "precision", "recall", "f1"}
    assert r["test"]["threshold"] == r["validation"]["threshold"]
    assert r["versions"]["tensorflow"] and r["wall_time_s"]["train"] > 0
    assert r["versions"]["TF_ENABLE_ONEDNN_OPTS"] in ("0", "1")  # the commands set a default
    assert len(r["versions"]["git_commit"]) >= 40
    assert [h["epoch"] for h in r["history"]] == [1, 2]
    best = max(r["history"], key=lambda h: h["val_auprc"])  # first of equals, as selection does
    assert best["epoch"] == r["selected_epoch"] and best["seconds"] > 0 and "g_loss" in best
    assert "epoch 2/2" in run["stdout"] and "test AUPRC" in run["stdout"]
    assert os.listdir(run["dir"] / "logs") and (run["dir"] / "saved_model" / "saved_model.pb").exists()
    for figure in ("test_curves.png", "test_score_histogram.png", "test_extremes.png"):
        assert (run["dir"] / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure


def test_saved_model_scores_match_in_a_fresh_process(run, mnist):
    from anomaly_toolbox.metrics import ranking_metrics
    from anomaly_toolbox.data.protocols import make_splits

    splits = make_splits(mnist, 1, "pooled", 0).limited(300)
    stored = np.load(run["dir"] / "scores.npz")
    np.testing.assert_array_equal(stored["test_labels"], splits.y_test)
    # one fresh process scores test and validation images (scores are per image)
    both = score_in_fresh_process(run["dir"] / "saved_model",
                                  np.concatenate([splits.x_test, splits.x_val]), run["tmp"])
    fresh, fresh_val = both[:len(splits.x_test)], both[len(splits.x_test):]
    assert_close(fresh, stored["test_scores"])
    assert ranking_metrics(fresh, splits.y_test)["auprc"] == pytest.approx(
        run["results"]["test"]["auprc"], abs=1e-6)
    # validation scores were kept from the selected epoch, not re-scored: still the model's
    kept = os.listdir(run["dir"] / "checkpoints")
    assert [k for k in kept if k.startswith("best_val_scores")] == [
        f"best_val_scores_epoch{run['results']['selected_epoch']}.npz"]
    assert_close(fresh_val, stored["val_scores"])


def test_score_cli_writes_csv_with_validation_threshold(run, images, tmp_path):
    src, out = tmp_path / "x.npy", tmp_path / "s.csv"
    np.save(src, images[0][:10])
    proc = cli("score", f"--saved_model={run['dir'] / 'saved_model'}", f"--input={src}",
               f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == [str(i) for i in range(10)]
    assert b"\r" not in out.read_bytes()  # plain lines for awk, cut and paste
    threshold = run["results"]["validation"]["threshold"]
    assert all(int(r["is_anomaly"]) == (float(r["score"]) >= threshold) for r in rows)


def test_rerun_of_a_finished_run_does_nothing(run):
    proc = cli("train", *run["args"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already finished" in proc.stdout and "epoch 1/2" not in proc.stdout
    again = json.loads((run["dir"] / "results.json").read_text())
    assert again["test"] == run["results"]["test"]


def test_rerun_with_another_config_is_refused(run):
    args = [a for a in run["args"] if not a.startswith("--config")] + ["--epochs=3"]
    proc = cli("train", *args)
    assert proc.returncode == 2 and "invalid output_dir" in proc.stderr and "config" in proc.stderr


def test_a_bad_train_flag_exits_2_and_writes_nothing(tmp_path):
    """The command's side of the contract, once; the checks themselves: the next test."""
    out = tmp_path / "out"
    proc = cli("train", f"--data_dir={DATA_DIR}", f"--output_dir={out}", "--epochs=1",
               "--protocol=leave_one_out")
    assert proc.returncode == 2 and "invalid protocol: 'leave_one_out'" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("overrides, message", [
    ({"model": "gan"}, "invalid model: 'gan'"),
    ({"anomalous_class": 10}, "invalid anomalous_class: 10"),
    ({"protocol": "leave_one_out"}, "invalid protocol: 'leave_one_out'"),
])
def test_train_refuses_bad_arguments_before_writing(tmp_path, overrides, message):
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.run import training

    out = tmp_path / "out"
    args = {"model": "ganomaly", "dataset": "mnist", "anomalous_class": 1,
            "output_dir": str(out), "epochs": 1, "data_dir": DATA_DIR, "limit": 64, **overrides}
    with pytest.raises(UsageError, match=re.escape(message)):
        training.fit(**args)
    assert not out.exists()


@pytest.fixture(scope="module")
def input_rule(run):
    """(channels, resize_to, sides): what the score command reads for this run's SavedModel."""
    from anomaly_toolbox.data import inputs
    from anomaly_toolbox.run import export

    return inputs.input_rule(export.load(str(run["dir"] / "saved_model"))[1])


def test_score_bad_input_exits_2_and_writes_nothing(run, tmp_path):
    """NaN is found while the batches stream into the model, after it loaded: no csv either."""
    src, out = tmp_path / "x.npy", tmp_path / "s.csv"
    np.save(src, np.full((2, 28, 28), np.nan, np.float32))
    proc = cli("score", f"--saved_model={run['dir'] / 'saved_model'}", f"--input={src}",
               f"--output={out}")
    assert proc.returncode == 2 and "NaN or inf" in proc.stderr and not out.exists()


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 20, 20), np.uint8), "28x28 or 32x32"),
    (np.zeros((0, 28, 28), np.uint8), "at least one image"),
    (np.zeros((2, 28, 28, 3), np.uint8), "1-channel"),
    (np.zeros((2, 2, 28, 28, 1), np.uint8), "(N, H, W[, C])"),
])
def test_score_input_checks_name_the_input(input_rule, tmp_path, array, message):
    from anomaly_toolbox.data import inputs
    from anomaly_toolbox.errors import UsageError

    src = tmp_path / "x.npy"
    np.save(src, array)
    with pytest.raises(UsageError, match=re.escape(message)) as e:
        inputs.read_input(str(src), *input_rule)
    assert e.value.argument == "input" and e.value.value == str(src)


def test_score_refuses_a_folder_that_is_not_our_saved_model(tmp_path, images):
    np.save(tmp_path / "x.npy", images[0][:2])
    proc = cli("score", f"--saved_model={tmp_path}", f"--input={tmp_path / 'x.npy'}")
    assert proc.returncode == 2 and "invalid saved_model" in proc.stderr


_PLAIN_TF = """
import json, sys, numpy as np, tensorflow as tf
assert 'anomaly_toolbox' not in sys.modules
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = {"batch": m.score(x).numpy().tolist()}
for dtype in ("uint8", "int32", "int64", "float32", "float64"):
    y = x.astype(dtype)
    out[dtype] = [m.score(y).numpy().tolist(), m.score(y[1]).numpy().tolist(),
                  m.score(y[1][..., None]).numpy().tolist(), m.score(y[..., None]).numpy().tolist()]
for name, bad in (("side", np.zeros((2, 20, 20), "uint8")), ("square", np.zeros((2, 28, 30))),
                  ("channels", np.zeros((2, 28, 28, 3), "int32"))):
    try:
        m.score(bad)
    except tf.errors.InvalidArgumentError as e:
        out[name] = e.message
print(json.dumps(out))
"""


def test_plain_tensorflow_takes_what_users_pass(run, images, tmp_path):
    """Any of uint8/int32/int64/float32/float64, a batch or one image, in a fresh process."""
    np.save(tmp_path / "x.npy", images[0][:3])
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", _PLAIN_TF, str(run["dir"] / "saved_model"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    for dtype in ("uint8", "int32", "int64", "float32", "float64"):
        batch, one, one_with_channel, with_channel = out[dtype]
        assert_close(batch, out["batch"]) and assert_close(with_channel, out["batch"])
        assert_close(one, out["batch"][1:2]) and assert_close(one_with_channel, out["batch"][1:2])
    assert "image side must be one of (28, 32)" in out["side"]
    assert "images must be square" in out["square"]
    assert "images must have 1 channel(s)" in out["channels"]


def test_score_cli_takes_one_png(run, images, tmp_path):
    from PIL import Image

    Image.fromarray(images[0][0]).save(tmp_path / "one.png")
    out = tmp_path / "s.csv"
    proc = cli("score", f"--saved_model={run['dir'] / 'saved_model'}",
               f"--input={tmp_path / 'one.png'}", f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["id"] for r in csv.DictReader(out.open())] == ["one.png"]
