"""Quiet misuse and small faults (issue 40): no TensorFlow, a finished run asked for another
threshold, the RGB extremes figure, an output folder the user cannot write."""

import json
import os
import subprocess
import sys

import pytest
from conftest import DATA_DIR, REPO

ADVICE = 'pip install -e ".[cpu]"'
HIDE_TENSORFLOW = (
    "import sys\n"
    "class Hide:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Hide())\n")
CONSOLE = os.path.join(os.path.dirname(sys.executable), "anomaly-toolbox")
RUNPY = "import runpy; runpy.run_module({!r}, run_name='__main__', alter_sys=True)"


def _main_modules():
    """Every module with a `__main__` block: each is a `python -m` entry point."""
    root = os.path.join(REPO, "anomaly_toolbox")
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(n for n in names if n.endswith(".py")):
            with open(os.path.join(folder, name)) as f:
                if 'if __name__ == "__main__":' in f.read():
                    relative = os.path.relpath(os.path.join(folder, name[:-3]), REPO)
                    yield relative.replace(os.sep, ".").removesuffix(".__main__")


MODULES = list(_main_modules())
assert {"anomaly_toolbox", "anomaly_toolbox.train", "anomaly_toolbox.score",
        "anomaly_toolbox.export", "anomaly_toolbox.ensemble"} <= set(MODULES), MODULES
ENTRY_POINTS = {
    "console": [CONSOLE, "train", "--help"],  # --help: were TF found, nothing would start
    "console no command": [CONSOLE],
    **{module: [sys.executable, "-m", module, "--help"] for module in MODULES},
    # what argv parsing missed: -m glued to its module, and runpy started from -c
    "-mNAME": [sys.executable, "-manomaly_toolbox.train", "--help"],
    "runpy": [sys.executable, "-c", RUNPY.format("anomaly_toolbox.train"), "--help"],
}


def _without_tensorflow(tmp_path, command):
    """`command` in a child whose imports cannot find tensorflow or keras (a sitecustomize on
    PYTHONPATH), as in an environment installed without the `cpu`/`gpu` extra."""
    (tmp_path / "sitecustomize.py").write_text(HIDE_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=120)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_without_tensorflow_every_entry_point_says_one_line(tmp_path, entry):
    if entry.startswith("console") and not os.path.exists(CONSOLE):
        pytest.fail("pip install -e . installs the console command")
    proc = _without_tensorflow(tmp_path, ENTRY_POINTS[entry])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr  # no traceback
    assert proc.stderr.startswith("error: tensorflow is not installed") and ADVICE in proc.stderr
    assert not proc.stdout


def test_without_tensorflow_a_library_import_raises_with_the_advice(tmp_path):
    """A notebook or script gets an exception it can catch, not an exit."""
    proc = _without_tensorflow(tmp_path, [sys.executable, "-c", "import anomaly_toolbox.train"])
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr and ADVICE in proc.stderr
    proc = _without_tensorflow(tmp_path, [sys.executable, "-c", (
        "try:\n    import anomaly_toolbox\nexcept ModuleNotFoundError as e:\n"
        "    print(e.name)")])
    assert proc.returncode == 0 and proc.stdout == "tensorflow\n", proc.stderr


# ------------------------------------------------ a finished run asked for another threshold

def _finished_copy(tiny_run, tmp_path):
    """A private copy of the shared tiny GANomaly run (finished with the default f1 rule)."""
    import shutil

    run, _ = tiny_run("ganomaly")
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", str(run.parent / "tiny.json")


def test_the_api_refuses_another_threshold_for_a_finished_run(tiny_run, tmp_path, capsys):
    import anomaly_toolbox as atb
    from anomaly_toolbox.errors import UsageError

    out, config = _finished_copy(tiny_run, tmp_path)
    before = (out / "results.json").read_bytes()
    options = dict(config=config, data_dir=DATA_DIR, limit=300, verbose=0)
    with pytest.raises(UsageError, match=r"threshold: 'f1' -> 'fpr:0.01'; choose a new"):
        atb.fit("ganomaly", "mnist", 3, out, threshold="fpr:0.01", **options)
    assert (out / "results.json").read_bytes() == before
    assert "already finished" not in capsys.readouterr().out
    assert atb.fit("ganomaly", "mnist", 3, out, threshold="f1", **options)["test"] == \
        json.loads(before)["test"]
    assert "already finished" in capsys.readouterr().out


def test_the_cli_refuses_another_threshold_for_a_finished_run(tiny_run, tmp_path):
    out, config = _finished_copy(tiny_run, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "anomaly_toolbox.train", "--model=ganomaly", "--dataset=mnist",
         "--anomalous_class=3", f"--config={config}", f"--data_dir={DATA_DIR}", "--limit=300",
         f"--output_dir={out}", "--threshold=fpr:0.05"], capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(f"error: invalid output_dir: '{out}'")
    assert "threshold: 'f1' -> 'fpr:0.05'" in proc.stderr and "already" not in proc.stdout


@pytest.mark.parametrize("validation, asked, same", [
    ({"auprc": 0.5, "threshold": 1.0}, "f1", True),
    ({"auprc": 0.5, "threshold": 1.0, "threshold_target_fpr": 0.01}, "fpr:0.010", True),
    ({"auprc": 0.5, "threshold": 1.0, "threshold_target_fpr": 0.01}, "fpr:0.02", False),
    # equal to 6 digits (the rule was compared as f"{rate:g}") is not equal
    ({"auprc": 0.5, "threshold": 1.0, "threshold_target_fpr": 0.01}, "fpr:0.01000001", False),
    ({"auprc": 0.5, "threshold": 1.0, "threshold_target_fpr": 0.01000001}, "fpr:0.01000001", True),
    ({"auprc": 0.5, "threshold": 1.0, "threshold_target_fpr": 0.01}, "f1", False),
    # without validation anomalies f1 cannot be computed: the run used (and recorded) fpr:0.01
    ({"mean_normal_score": 1.0, "threshold": 1.0, "threshold_target_fpr": 0.01}, "f1", True),
    ({"mean_normal_score": 1.0, "threshold": 1.0, "threshold_target_fpr": 0.01}, "fpr:0.1", False),
])
def test_the_rule_compared_is_the_one_the_run_used(tmp_path, validation, asked, same):
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.rundir import RunDir

    (tmp_path / "results.json").write_text(json.dumps({"validation": validation}))
    if same:
        assert training._already_finished(RunDir(tmp_path), asked)["validation"] == validation
    else:
        with pytest.raises(UsageError, match=f"-> '{asked}'"):
            training._already_finished(RunDir(tmp_path), asked)


# ----------------------------------------------------------------- the RGB extremes figure

def test_an_rgb_run_draws_the_error_as_one_heat_map_without_warnings(mnist, tmp_path,
                                                                     monkeypatch):
    import logging
    import warnings

    import numpy as np
    from PIL import Image

    from anomaly_toolbox.run import figures, training

    normal, threes = mnist.x_test[mnist.y_test != 3], mnist.x_test[mnist.y_test == 3]
    for folder, images in (("train", normal[:48]), ("test/normal", normal[48:64]),
                           ("test/anomalous", threes[:16])):
        (tmp_path / "rgb" / folder).mkdir(parents=True)
        for i, image in enumerate(images):  # a coloured digit: the channels differ
            rgb = (image[..., None] * np.array([1.0, 0.6, 0.3])).astype(np.uint8)
            Image.fromarray(rgb).save(tmp_path / "rgb" / folder / f"{i:02d}.png")
    (tmp_path / "tiny.json").write_text(json.dumps(
        {"epochs": 1, "batch_size": 16, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))

    drawn, heard = {}, []
    save, write_all = figures._save, figures.write_all

    def spy_save(fig, path):
        drawn[os.path.basename(path)] = [[im.get_array() for im in ax.get_images()]
                                         for ax in fig.axes]
        return save(fig, path)

    def listening_write_all(*args, **kwargs):
        handler = logging.Handler(logging.WARNING)
        handler.emit = heard.append  # matplotlib's clipping notice is a log record
        logging.getLogger("matplotlib").addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                return write_all(*args, **kwargs)
        finally:
            logging.getLogger("matplotlib").removeHandler(handler)
            heard.extend(caught)

    monkeypatch.setattr(figures, "_save", spy_save)
    monkeypatch.setattr(figures, "write_all", listening_write_all)
    training.fit("ganomaly", f"folder:{tmp_path / 'rgb'}", 0, str(tmp_path / "run"),
                 config=str(tmp_path / "tiny.json"), verbose=0)
    assert heard == [], [str(getattr(h, "msg", h)) for h in heard]
    assert (tmp_path / "run" / "test_extremes.png").stat().st_size > 0
    panels = [images for images in drawn["test_extremes.png"] if images]  # not the colour bar
    assert len(panels) == 3 * 16
    inputs, errors = panels[:16], panels[32:]
    assert all(np.ndim(a) == 3 and a.shape[-1] == 3 for (a,) in inputs)  # colour stays colour
    assert all(np.ndim(e) == 2 for (e,) in errors)  # one value per pixel, read on the colour bar


def test_train_refuses_a_folder_of_other_files_before_writing_into_it(tiny_run, tmp_path):
    """Images, or an ensemble (results.json, no run.json): not a run this command can own."""
    import anomaly_toolbox as atb
    from anomaly_toolbox.errors import UsageError

    _, config = _finished_copy(tiny_run, tmp_path)
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat.png").write_bytes(b"mine")
    (tmp_path / "ensemble").mkdir()
    (tmp_path / "ensemble" / "results.json").write_text('{"model": "ensemble"}')
    for folder, first in (("pictures", "cat.png"), ("ensemble", "results.json")):
        before = sorted(os.listdir(tmp_path / folder))
        with pytest.raises(UsageError, match=rf"holds 1 other file\(s\) \('{first}', no run"):
            atb.fit("ganomaly", "mnist", 3, tmp_path / folder, config=config, data_dir=DATA_DIR,
                    limit=300, verbose=0)
        assert sorted(os.listdir(tmp_path / folder)) == before  # no .lock, no run.json
    from anomaly_toolbox.run.rundir import RunDir

    cell = tmp_path / "benchmark_cell"  # the benchmark opens its log before training starts
    cell.mkdir()
    for name in ("train.log", ".DS_Store", ".run.json-1a2b3c4d"):
        (cell / name).write_text("")
    with RunDir(str(cell)).locked():
        pass


def test_train_on_a_folder_whose_run_json_is_damaged_is_one_error_line(tmp_path, capsys):
    """A run.json cut short (a copy stopped half-way) or edited by hand: a JSONDecodeError
    traceback from the resume check, before; now one line naming the file, nothing written."""
    from conftest import TINY_RUN, one_line_exit_2

    from anomaly_toolbox.run import training

    (tmp_path / "tiny.json").write_text(json.dumps(TINY_RUN))
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"model": "gan')
    err = one_line_exit_2(capsys, lambda: training.fit(
        "ganomaly", "mnist", 3, str(run), config=str(tmp_path / "tiny.json"), data_dir=DATA_DIR,
        limit=300, verbose=0))
    assert err.startswith(f"error: {run / 'run.json'}: damaged, not valid JSON"), err
    assert sorted(os.listdir(run)) == [".lock", "run.json"]
    assert (run / "run.json").read_text() == '{"model": "gan'


def test_a_history_json_damaged_after_the_last_epoch_is_refused_before_anything_is_rewritten(
        tiny_run, tmp_path, capsys):
    """Killed after the last epoch's commit, then history.json damaged: the finish exported the
    SavedModel and scores again and only then refused the file."""
    from conftest import one_line_exit_2

    from anomaly_toolbox.run import training

    run, config = _finished_copy(tiny_run, tmp_path)
    (run / "results.json").unlink()  # not finished: the same command goes straight to the finish
    (run / "history.json").write_text('[{"epoch": 1')
    kept = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    err = one_line_exit_2(capsys, lambda: training.fit(
        "ganomaly", "mnist", 3, str(run), config=config, data_dir=DATA_DIR, limit=300, verbose=0))
    assert err.startswith(f"error: {run / 'history.json'}: damaged"), err
    changed = {p for p in run.rglob("*") if p.is_file() and kept.get(p) != p.stat().st_mtime_ns}
    assert not changed - {run / ".lock"} and not (run / "results.json").exists(), changed


def test_a_run_whose_test_split_lacks_anomalies_says_why_it_has_no_auprc(tmp_path, capsys):
    """--limit=2 leaves a test split with no anomalies: the run ended with exit 0 and no word
    about the missing test AUPRC and AUROC."""
    from conftest import TINY_RUN

    from anomaly_toolbox.run import training

    (tmp_path / "tiny.json").write_text(json.dumps(TINY_RUN))
    results = training.fit("autoencoder", "mnist", 3, str(tmp_path / "run"), epochs=1,
                           config=str(tmp_path / "tiny.json"), data_dir=DATA_DIR, limit=2,
                           verbose=0)
    out = capsys.readouterr().out
    assert "auprc" not in results["test"] and "\ntest AUPRC" not in out
    assert "no test AUPRC or AUROC: test holds 0 anomalous and 2 normal images" in out, out
