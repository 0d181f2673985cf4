"""A 2-cell grid run end to end, killed after its first cell and resumed, then the table (the
autoencoder: the runner is the same for every model, and it trains fastest)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from benchmarks.tests.conftest import DATA_DIR

TINY = {"profile": "tiny", "epochs": 1, "batch_size": 32,
        "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def test_grid_resumes_after_kill_and_writes_the_table(tmp_path):
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "autoencoder_mnist_tiny.json").write_text(json.dumps(TINY))
    results, table = tmp_path / "results", tmp_path / "benchmarks.md"
    command = [sys.executable, "-m", "benchmarks.benchmark", "--models=autoencoder",
               "--datasets=mnist", "--classes=1,2", "--profile=tiny", "--limit=300",
               f"--experiments_dir={experiments}", f"--results_dir={results}",
               f"--runs_dir={tmp_path / 'runs'}", f"--benchmarks_md={table}",
               f"--data_dir={DATA_DIR}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = results / "pooled" / "mnist" / "autoencoder_tiny" / "class1_seed0.json"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the cell it is training
    proc.wait()
    assert first.exists() and not table.exists()
    mtime = first.stat().st_mtime

    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "class1_seed0 skipped (done)" in done.stdout and first.stat().st_mtime == mtime
    text = table.read_text()
    assert "## mnist, pooled protocol, `tiny, smoke: 300 images per split` profile" in text
    assert "Missing trained cells (model x class x seed): 8 of 10" in text
    kept = np.load(results / "pooled" / "mnist" / "autoencoder_tiny" / "class2_seed0.scores.npz")
    assert set(kept.files) == {"val_scores", "val_labels", "test_scores", "test_labels"}
    second = json.loads((results / "pooled" / "mnist" / "autoencoder_tiny" / "class2_seed0.json").read_text())
    assert f"| 2 | {second['test']['auprc']:.3f} (n=1) |" in text
    assert (tmp_path / "figures" / "benchmark_pooled_mnist_tiny.png").stat().st_size > 1000


def _default_sigint():  # as a terminal user's process has it (test_resume.py's reason)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tiny_grid_at_its_first_cell(tmp_path, children):
    """(runner, its runs folder): a 3-cell tiny grid on one worker, in its own process group,
    once its first cell has started. Its cells train for 1000 epochs: only a cell that ignored
    the signal can end with results (a 1-epoch cell trains in seconds, as a test can stall)."""
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "autoencoder_mnist_tiny.json").write_text(json.dumps({**TINY, "epochs": 1000}))
    runs = tmp_path / "runs" / "pooled" / "mnist" / "autoencoder_tiny"
    proc = children([sys.executable, "-m", "benchmarks.benchmark", "--models=autoencoder",
                     "--datasets=mnist", "--classes=1,2,3", "--profile=tiny", "--limit=300",
                     "--workers=1", f"--experiments_dir={experiments}",
                     f"--results_dir={tmp_path / 'results'}", f"--runs_dir={tmp_path / 'runs'}",
                     f"--benchmarks_md={tmp_path / 'b.md'}", f"--data_dir={DATA_DIR}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                    preexec_fn=_default_sigint)  # an xdist worker's children inherit it ignored
    deadline = time.time() + 300
    while not (runs / "class1_seed0" / "train.log").exists() and time.time() < deadline:
        time.sleep(0.1)
    return proc, runs


def test_ctrl_c_stops_the_grid_without_starting_the_queued_cells(tmp_path, children):
    """Ctrl-C reaches the runner and its training cell: no queued cell starts (the pool once
    started and trained every one before the runner said it was interrupted)."""
    proc, runs = _tiny_grid_at_its_first_cell(tmp_path, children)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "error: interrupted by SIGINT" in stderr, stderr[-500:]
    assert sorted(os.listdir(runs)) == ["class1_seed0"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_to_the_runner_alone_stops_its_running_cell(tmp_path, children, sig):
    """kill PID (not the group, as a terminal's Ctrl-C signals it) reaches the runner only: it
    starts no queued cell and passes the signal on to the running one, which keeps nothing (the
    runner once waited while that cell trained to its end, and kept it)."""
    proc, runs = _tiny_grid_at_its_first_cell(tmp_path, children)
    os.kill(proc.pid, sig)  # the runner alone
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig and stderr.strip().splitlines() == [
        f"error: interrupted by {sig.name}; run the same command again to finish (training "
        "resumes after its last finished epoch)"], stderr[-500:]
    assert sorted(os.listdir(runs)) == ["class1_seed0"]
    assert not list((tmp_path / "results").rglob("class*")) and not (tmp_path / "b.md").exists()


def test_an_interrupt_as_a_cell_ends_starts_no_queued_cell(monkeypatch):
    """Ctrl-C ends the running cell (the terminal signals the group) as it reaches the runner:
    with every cell queued in the pool, the worker whose cell had ended could start the next
    before the runner's handler ran (3 of 28 runs of the Ctrl-C test above: that cell trained
    to its end). The cells here end by the signal the runner gets, as a Ctrl-C'd cell does."""
    import threading

    from anomaly_toolbox import cli
    from benchmarks import benchmark

    monkeypatch.setattr(benchmark, "_STOPPING", threading.Event())
    monkeypatch.setattr(cli, "_SIGNALLED", [])  # what the handler records stays in this test
    monkeypatch.setattr(cli, "_RAISED_AT", [])
    started = []

    def run(cell):
        started.append(cell)
        time.sleep(0.5)  # the runner waits for the cell's end
        os.kill(os.getpid(), signal.SIGTERM)  # SIGINT: ignored in a pytest-xdist worker
        return str(cell), "FAILED (exit 143)"
    handler = signal.signal(signal.SIGTERM, cli._interrupted)  # as cli.main sets it
    try:
        with pytest.raises(KeyboardInterrupt):
            benchmark.run_all([1, 2, 3], 1, run)
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert started == [1]


def test_bad_grid_arguments_exit_2(tmp_path):
    cases = (("--classes=a-b", "invalid classes"), ("--shard=2/2", "invalid shard"),
             ("--models=gan", "invalid model"),
             ("--threads_per_worker=0", "invalid threads_per_worker"))
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.benchmark", flag,
                               f"--results_dir={tmp_path}", f"--benchmarks_md={tmp_path / 'b.md'}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for flag, _ in cases]  # independent: side by side
    for proc, (flag, message) in zip(procs, cases):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2 and message in stderr, (flag, stderr[-500:])


@pytest.mark.parametrize("flag, message", [
    ("--models=gan", "invalid model: 'gan'"),  # answered only after TensorFlow's import
    ("--results_dir=FILE", "invalid results_dir: 'FILE' (expected a writable directory"),
    ("--runs_dir=FILE", "invalid runs_dir: 'FILE' (expected a writable directory"),  # tracebacks
    ("--benchmarks_md=TMP", "invalid benchmarks_md: 'TMP' (expected a file path, not a folder)"),
    ("--benchmarks_md=FILE/b.md", "invalid benchmarks_md: 'FILE' (expected a writable directory"),
    ("--data_dir=TMP/none", "invalid data_dir: 'TMP/none' (expected an existing directory)"),
])
def test_grid_flags_are_checked_before_tensorflow_loads(tmp_path, flag, message):
    """The runner checked its flags after TensorFlow's import (minutes on a busy machine): a
    results or runs folder that is a file was a traceback, a --benchmarks_md folder one after
    every cell had trained, and a missing --data_dir FAILED each cell in turn."""
    from tests.test_cli import without_tensorflow

    (tmp_path / "file").write_text("")
    flag, message = (s.replace("FILE", str(tmp_path / "file")).replace("TMP", str(tmp_path))
                     for s in (flag, message))
    env = {**os.environ, **without_tensorflow(tmp_path / "poison")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.benchmark", "--models=autoencoder",
                           "--datasets=mnist", "--classes=1", f"--results_dir={tmp_path / 'r'}",
                           f"--runs_dir={tmp_path / 'runs'}", f"--benchmarks_md={tmp_path / 'b.md'}",
                           flag], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and sorted(os.listdir(tmp_path)) == ["file", "poison"]


@pytest.mark.parametrize("flag", ["--models=egbad,egbad", "--datasets=mnist,mnist"])
def test_a_model_or_dataset_listed_twice_is_refused(tmp_path, flag):
    """Its cells ran twice, side by side in one run folder (one FAILED by the lock, exit 1).
    --table_only checks the same grid without training anything if the check is missing."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.benchmark", flag, "--table_only",
                           f"--results_dir={tmp_path}", f"--benchmarks_md={tmp_path / 'b.md'}"],
                          capture_output=True, text=True)
    value = flag.split("=")[1]
    assert proc.returncode == 2 and f"invalid {flag[2:].split('=')[0]}: '{value}' (expected " \
        f"each value once ({value.split(',')[0]} is listed twice)" in proc.stderr, proc.stderr


def test_classes_seeds_protocol_and_limit_are_checked_before_any_cell():
    """Each was passed on to every cell's run, which failed while the grid exited 0."""
    import pytest

    from anomaly_toolbox.errors import UsageError
    from benchmarks import benchmark

    assert benchmark.check_grid("1-3", ["0", "2"], "official", 200) == ([1, 2, 3], [0, 2])
    for args, message in [(("12", ["0"], "pooled"), "invalid classes: '12'"),
                          (("9-0", ["0"], "pooled"), "invalid classes: '9-0'"),
                          (("0", ["a"], "pooled"), "invalid seeds: 'a'"),
                          (("0", ["-1"], "pooled"), "invalid seeds: '-1'"),
                          (("0", ["0"], "foo"), "invalid protocol: 'foo'"),
                          (("0", ["0"], "pooled", -5), "invalid limit: -5"),
                          # a cell twice: two workers in one run folder, one FAILED by its lock
                          (("1,1", ["0"], "pooled"), r"invalid classes: '1,1' .*1 is listed"),
                          (("0", ["0", "00"], "pooled"), r"invalid seeds: '0,00' .*0 is listed")]:
        with pytest.raises(UsageError, match=message):
            benchmark.check_grid(*args)


def test_grid_runs_class_by_class_and_splits_cores_between_workers(monkeypatch):
    from benchmarks import benchmark

    cells = benchmark.grid(["a", "b"], ["mnist", "fashion_mnist"], [0, 1], [0], "pooled", "cpu")
    assert [(c[4], c[1], c[2]) for c in cells[:4]] == [
        (0, "mnist", "a"), (0, "mnist", "b"), (0, "fashion_mnist", "a"), (0, "fashion_mnist", "b")]
    assert len(cells) == 8 and len(set(cells)) == 8
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    monkeypatch.setattr(benchmark.os, "cpu_count", lambda: 4)
    assert benchmark.worker_env(2)["TF_NUM_INTRAOP_THREADS"] == "2"
    assert benchmark.worker_env(8)["TF_NUM_INTEROP_THREADS"] == "1"
    assert "TF_NUM_INTRAOP_THREADS" not in benchmark.worker_env(1)
    assert benchmark.worker_env(1, threads=3)["TF_NUM_INTRAOP_THREADS"] == "3"


def test_job_array_shards_merge_by_copying_and_the_table_checks_gaps_and_duplicates(tmp_path,
                                                                                   children):
    """What a Slurm --array job does (README): shard i of n per task, each into its own results
    folder, then copy the folders together and run --table_only."""
    import shutil

    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "autoencoder_mnist_tiny.json").write_text(json.dumps(TINY))
    grid_flags = ["--models=autoencoder", "--datasets=mnist", "--classes=1,2", "--profile=tiny",
                  f"--experiments_dir={experiments}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    merged = tmp_path / "merged"
    shards = []
    for task in (0, 1):  # the tasks of a job array run side by side, each on its own folders
        shard, log = tmp_path / f"results_{task}", tmp_path / f"task{task}.log"
        with open(log, "w") as out:
            shards.append((shard, log, children(
                [sys.executable, "-m", "benchmarks.benchmark", *grid_flags,
                 f"--shard={task}/2", "--limit=200", "--workers=1", f"--results_dir={shard}",
                 f"--runs_dir={tmp_path / f'runs_{task}'}", f"--data_dir={DATA_DIR}",
                 f"--benchmarks_md={tmp_path / f'task{task}' / 'b.md'}"], env=env,
                stdout=out, stderr=subprocess.STDOUT)))
    for shard, log, proc in shards:
        assert proc.wait(timeout=600) == 0, log.read_text()[-2000:]
        assert len(list(shard.rglob("class*_seed0.json"))) == 1  # one cell per shard
        shutil.copytree(shard, merged, dirs_exist_ok=True)

    def table(*extra):
        return subprocess.run([sys.executable, "-m", "benchmarks.benchmark",
                               *grid_flags, "--table_only", f"--results_dir={merged}",
                               f"--benchmarks_md={tmp_path / 'b.md'}", *extra],
                              env=env, capture_output=True, text=True)

    done = table("--require_complete")
    assert done.returncode == 0 and "0 cell(s) of the grid missing" in done.stdout, done.stderr
    from benchmarks import benchmark  # the same check, in-process from here on

    grid = benchmark.grid(["autoencoder"], ["mnist"], [1, 2, 3], [0], "pooled", "tiny")
    assert benchmark.check_merged(str(merged), grid) == (
        ["pooled/mnist/autoencoder_tiny/class3_seed0"], [])
    cell = merged / "pooled" / "mnist" / "autoencoder_tiny"
    shutil.copy(cell / "class1_seed0.json", cell / "class1_seed7.json")  # a misnamed copy
    _, duplicates = benchmark.check_merged(str(merged), grid)
    assert len(duplicates) == 1 and "class1_seed7.json holds" in duplicates[0]
    dup = table()
    assert dup.returncode == 2 and "class1_seed7.json holds" in dup.stderr


def test_a_failed_cell_makes_the_grid_exit_1(tmp_path):
    """The runner printed FAILED and exited 0, so a script or job array took the grid as done."""
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "autoencoder_mnist_tiny.json").write_text(json.dumps({**TINY, "epochs": 0}))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.benchmark", "--models=autoencoder", "--datasets=mnist",
         "--classes=1", "--profile=tiny", "--limit=300", f"--experiments_dir={experiments}",
         f"--results_dir={tmp_path / 'results'}", f"--runs_dir={tmp_path / 'runs'}",
         f"--benchmarks_md={tmp_path / 'b.md'}", f"--data_dir={DATA_DIR}"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "class1_seed0 FAILED (exit 2" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: 1 of 1 cell(s) failed, see each one's train.log under --runs_dir: ")
    assert (tmp_path / "b.md").exists()  # the table of the cells that did finish is still written
    missing = subprocess.run(
        [sys.executable, "-m", "benchmarks.benchmark", "--table_only",
         f"--results_dir={tmp_path / 'none'}", f"--benchmarks_md={tmp_path / 'c.md'}"],
        capture_output=True, text=True)  # was a FileNotFoundError traceback
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1] == (
        f"error: invalid results_dir: '{tmp_path / 'none'}' (expected a folder of results files)")
    assert not (tmp_path / "c.md").exists()
