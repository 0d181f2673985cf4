"""A 2-cell grid run end to end, killed after its first cell and resumed, then the table."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import DATA_DIR

TINY = {"profile": "tiny", "epochs": 1, "batch_size": 32,
        "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def test_grid_resumes_after_kill_and_writes_the_table(tmp_path):
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "ganomaly_mnist_tiny.json").write_text(json.dumps(TINY))
    results, table = tmp_path / "results", tmp_path / "benchmarks.md"
    command = [sys.executable, "-m", "anomaly_toolbox.bench.benchmark", "--models=ganomaly",
               "--datasets=mnist", "--classes=1,2", "--profile=tiny", "--limit=300",
               f"--experiments_dir={experiments}", f"--results_dir={results}",
               f"--runs_dir={tmp_path / 'runs'}", f"--benchmarks_md={table}",
               f"--data_dir={DATA_DIR}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = results / "pooled" / "mnist" / "ganomaly_tiny" / "class1_seed0.json"
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
    assert "Missing cells (shown as —): 8 of 10" in text
    second = json.loads((results / "pooled" / "mnist" / "ganomaly_tiny" / "class2_seed0.json").read_text())
    assert f"| 2 | {second['test']['auprc']:.3f} (n=1) |" in text
    assert (tmp_path / "figures" / "benchmark_pooled_mnist_tiny.png").stat().st_size > 1000


def test_bad_grid_arguments_exit_2(tmp_path):
    for flag, message in (("--classes=a-b", "invalid classes"), ("--shard=2/2", "invalid shard"),
                          ("--models=gan", "invalid model"),
                          ("--threads_per_worker=0", "invalid threads_per_worker")):
        proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.bench.benchmark", flag,
                               f"--results_dir={tmp_path}", f"--benchmarks_md={tmp_path / 'b.md'}"],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-500:]


def test_grid_runs_class_by_class_and_splits_cores_between_workers(monkeypatch):
    from anomaly_toolbox.bench import benchmark

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
