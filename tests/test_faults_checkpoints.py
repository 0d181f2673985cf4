"""Damaged checkpoints and kills during the finish (issue 40): a damaged newest resume point falls
back to the one before and the run ends exactly as an uninterrupted one (training is
deterministic per epoch); with nothing loadable, one `error:` line naming the file; a SIGKILL at
named points of the finish, then the same command: a loadable SavedModel and equal results."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import DATA_DIR, TINY

CONFIG = {"epochs": 2, "batch_size": 32, "precision": "float32", "model": TINY}
ARGS = dict(model="ganomaly", dataset="mnist", anomalous_class=7, limit=300,
            data_dir=DATA_DIR, verbose=0)
SAME = ("selected_epoch", "validation", "test", "splits")


def _run(tmp, out):
    from anomaly_toolbox.run import training

    return training.fit(output_dir=str(out), config=str(tmp / "c.json"), **ARGS)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(tmp, results) of an uninterrupted 2-epoch run in tmp/reference: epoch 2 is the best,
    and checkpoints/last keeps both epochs."""
    tmp = tmp_path_factory.mktemp("faults_ckpt")
    (tmp / "c.json").write_text(json.dumps(CONFIG))
    reference = _run(tmp, tmp / "reference")
    assert reference["selected_epoch"] == 2
    names = os.listdir(tmp / "reference" / "checkpoints" / "last")
    assert sorted(n for n in names if n.endswith(".index")) == ["ckpt-1.index", "ckpt-2.index"]
    return tmp, reference


def _unfinished(tmp, tmp_path):
    """A copy of the reference as a kill after epoch 2's commit, before the finish, leaves it."""
    run = tmp_path / "run"
    shutil.copytree(tmp / "reference", run)
    for name in ("results.json", "scores.npz", "saved_model"):
        shutil.rmtree(run / name) if name == "saved_model" else os.remove(run / name)
    return run


def _assert_same(results, reference):
    for key in SAME:
        assert results[key] == reference[key], key
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(results["history"]) == drop(reference["history"])


def _junk(path):
    path.write_bytes(b"junk")


def _truncate(path):
    os.truncate(path, os.path.getsize(path) // 3)


def test_damage_names_the_file_and_resume_points_come_from_the_files(folders, tmp_path):
    from anomaly_toolbox.run.checkpoints import damage, last_prefixes
    from anomaly_toolbox.run.rundir import RunDir

    tmp, _ = folders
    run = _unfinished(tmp, tmp_path)
    last = run / "checkpoints" / "last"
    assert damage(str(last / "ckpt-2")) is None
    _truncate(last / "ckpt-2.data-00000-of-00001")  # a short read: IndexError inside TF
    assert damage(str(last / "ckpt-2"))[0] == str(last / "ckpt-2.data-00000-of-00001")
    (last / "ckpt-1.index").write_bytes((last / "ckpt-1.index").read_bytes()[:-40])
    assert damage(str(last / "ckpt-1"))[0] == str(last / "ckpt-1.index")
    _junk(last / "checkpoint")  # TensorFlow would then see no checkpoint and start over
    assert last_prefixes(RunDir(run)) == [str(last / "ckpt-2"), str(last / "ckpt-1")]


def test_a_damaged_newest_resume_point_falls_back_to_the_one_before(folders, tmp_path, capfd):
    from anomaly_toolbox.run.checkpoints import damage

    tmp, reference = folders
    run = _unfinished(tmp, tmp_path)
    _junk(run / "checkpoints" / "last" / "ckpt-2.index")
    capfd.readouterr()
    results = _run(tmp, run)
    out, err = capfd.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning: damaged")]
    assert len(warnings) == 1 and "ckpt-2.index" in warnings[0] and "ckpt-1" in warnings[0], err
    assert "Traceback" not in err and f"Resuming {run} after epoch 1" in out
    _assert_same(results, reference)  # epoch 2 trained again to the same numbers
    assert damage(str(run / "checkpoints" / "last" / "ckpt-2")) is None  # overwritten whole


def _snapshot(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files if f != ".lock"}


def test_no_loadable_resume_point_is_one_error_line_and_changes_nothing(folders, tmp_path):
    tmp, _ = folders
    run = _unfinished(tmp, tmp_path)
    last = run / "checkpoints" / "last"
    _junk(last / "ckpt-2.index")
    _truncate(last / "ckpt-1.data-00000-of-00001")
    before = _snapshot(run)
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_toolbox.train", "--model=ganomaly", "--dataset=mnist",
         "--anomalous_class=7", f"--config={tmp / 'c.json'}", "--limit=300",
         f"--data_dir={DATA_DIR}", f"--output_dir={run}", "--verbose=0"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert str(last / "ckpt-2.index") in errors[0] and f"delete {run}" in errors[0]
    assert _snapshot(run) == before  # no silent restart over the old files


def test_a_damaged_best_at_the_finish_is_copied_again_or_named(folders, tmp_path, capfd):
    from anomaly_toolbox.errors import DataError

    tmp, reference = folders
    run = _unfinished(tmp, tmp_path)
    best = run / "checkpoints" / "best" / "ckpt-2.data-00000-of-00001"
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    _truncate(best)
    capfd.readouterr()
    _assert_same(_run(tmp, run), reference)  # checkpoints/last still holds epoch 2
    assert "warning: damaged checkpoint" in capfd.readouterr().err
    # without a resume point of epoch 2 (only when it is older than both) nothing can replace it
    import tensorflow as tf
    from anomaly_toolbox.run.checkpoints import best_checkpoint
    from anomaly_toolbox.run.rundir import RunDir

    _truncate(broken / "checkpoints" / "best" / best.name)
    for name in os.listdir(broken / "checkpoints" / "last"):
        if name.startswith("ckpt-2."):
            os.remove(broken / "checkpoints" / "last" / name)
    with pytest.raises(DataError, match=f"damaged checkpoint {broken}/checkpoints/best/ckpt-2.*"
                                        f"no resume point holds epoch 2: delete {broken}"):
        best_checkpoint(RunDir(broken), {"best_epoch": tf.Variable(2)})


# A child training process killed at a named point of the finish: polled from outside while the
# SavedModel is being written, or killing itself right at a write (exact, not a race).
_CHILD = """
import os, signal, sys
point = sys.argv[1]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
for name in ("rename", "replace"):
    real = getattr(os, name)
    def hook(src, dst, *a, _real=real, **k):
        if point == "before_results" and os.path.basename(dst) == "results.json":
            die()  # its temporary is written, the rename (the commit) is not
        _real(src, dst, *a, **k)
        if point == "mid_swap" and os.path.basename(src) == "saved_model":
            die()  # the old SavedModel moved aside, the new one not yet in place
    setattr(os, name, hook)
from anomaly_toolbox import cli, train
sys.argv = ["train"] + sys.argv[2:]
cli.main(train.define_flags, train.body)
"""


def test_sigkill_at_named_points_of_the_finish_then_rerun(folders, tmp_path, children):
    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.run import export

    tmp, reference = folders
    run = _unfinished(tmp, tmp_path)
    flags = ["--model=ganomaly", "--dataset=mnist", "--anomalous_class=7",
             f"--config={tmp / 'c.json'}", "--limit=300", f"--data_dir={DATA_DIR}",
             f"--output_dir={run}", "--verbose=0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    hidden = lambda: [n for n in os.listdir(run) if n.startswith(".") and "saved_model" in n]

    def child(point):
        log = open(tmp_path / f"{point}.err", "w")
        proc = children([sys.executable, "-c", _CHILD, point, *flags], env=env,
                        stdout=subprocess.DEVNULL, stderr=log)
        if point == "polled":
            deadline = time.time() + 300
            while not hidden() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
        log.close()
        assert proc.returncode == -signal.SIGKILL, (tmp_path / f"{point}.err").read_text()[-2000:]
        assert not (run / "results.json").exists()

    child("polled")  # while tf.saved_model.save writes the temporary folder
    assert hidden() and not (run / "saved_model").exists()
    child("before_results")
    assert (run / "saved_model" / "saved_model.pb").exists() and (run / "scores.npz").exists()
    assert any(n.startswith(".results.json") for n in os.listdir(run)) and not hidden()
    child("mid_swap")  # a complete SavedModel being replaced
    assert not (run / "saved_model").exists() and hidden()

    results = _run(tmp, run)  # the same command once more
    _assert_same(results, reference)
    assert not [n for n in os.listdir(run) if n.startswith(".") and n != ".lock"]
    loaded, _ = export.load(str(run / "saved_model"))
    splits = load_splits("mnist", 7, data_dir=DATA_DIR, limit=300)
    kept = np.load(tmp / "reference" / "scores.npz")
    np.testing.assert_allclose(loaded.score(splits.x_test).numpy(), kept["test_scores"], atol=1e-5)
