"""Run a grid of training runs (models x datasets x classes x seeds) and regenerate benchmarks.md.

  python -m benchmarks.benchmark --models=ganomaly,egbad --datasets=mnist --classes=0-9

Each cell is one ordinary `anomaly_toolbox.train` run in its own process and run folder
(`--runs_dir`), so an interrupted cell resumes from its checkpoint. A finished cell's
results.json (small: metrics, splits, budget, wall time, versions; no weights) is copied to
`--results_dir`, which is committed, beside its validation and test scores and labels
(`<cell>.scores.npz`, compressed, so that ensembles can be rebuilt from the repository alone);
a cell whose results file exists is skipped. The grid exits 1 if a cell failed (after writing
the table of those that finished).
`--shard=i/n` runs every n-th cell starting at i, so machines can split one grid and merge
results by copying files.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
from absl import flags

from anomaly_toolbox import cli
from benchmarks import BENCHMARKS_MD, EXPERIMENTS, REPO, RESULTS  # noqa: F401 (REPO: for tools)
from anomaly_toolbox.files import write_atomic, write_json, write_npz
from anomaly_toolbox.run.rundir import RunDir
from benchmarks.grid_flags import (check_grid, parse_classes, parse_shard,  # noqa: F401
                                   refuse_repeated_flags, refuse_repeats)  # (campaign, tests)

FLAGS = flags.FLAGS
# The cells' train processes now running, and whether the grid is stopping (_stop_cells).
_RUNNING, _LOCK, _STOPPING = set(), threading.Lock(), threading.Event()


def define_flags():
    flags.DEFINE_list("models", ["ganomaly", "egbad", "anogan"], "Registered model names.")
    flags.DEFINE_list("datasets", ["mnist", "fashion_mnist"], "Datasets.")
    flags.DEFINE_string("classes", "0-9", "Anomalous classes: '0-9' or '1,3,5'.")
    flags.DEFINE_list("seeds", ["0"], "Training seeds.")
    flags.DEFINE_string("protocol", "pooled", "pooled or official.")
    flags.DEFINE_string("profile", "cpu", "Budget profile: experiments/<model>_<dataset>_<profile>.json.")
    flags.DEFINE_string("results_dir", RESULTS, "Where finished cells' results.json are kept.")
    flags.DEFINE_string("runs_dir", "runs/benchmark", "Where cells train (checkpoints, SavedModels).")
    flags.DEFINE_string("data_dir", None, "Passed to anomaly_toolbox.train.")
    flags.DEFINE_string("experiments_dir", None, "Folder of <model>_<dataset>_<profile>.json "
                        "(default: the repository's experiments/).")
    flags.DEFINE_integer("limit", None, "Passed to anomaly_toolbox.train: smoke runs only.")
    flags.DEFINE_integer("workers", 2, "Cells trained at once on this machine (two 1-thread workers "
                         "beat one 2-thread worker on 2 cores: benchmarks.md, Speed).")
    flags.DEFINE_integer("threads_per_worker", None, "TensorFlow intra/inter-op threads of each "
                         "cell (default: CPU count // workers; TensorFlow's own default with 1 worker).")
    flags.DEFINE_string("shard", "0/1", "i/n: run cells i, i+n, i+2n, ...")
    flags.DEFINE_string("benchmarks_md", BENCHMARKS_MD, "Table to regenerate after the grid.")
    flags.DEFINE_bool("record_test_curve", False, "Passed to anomaly_toolbox.train: each epoch's "
                      "test metrics are kept for the budget study's comparison (analysis only).")
    flags.DEFINE_bool("table_only", False, "Only regenerate the table from results_dir, after "
                      "checking it (merged shards: no duplicate cells; gaps of the grid listed).")
    flags.DEFINE_bool("require_complete", False, "With --table_only: a gap in the grid given by "
                      "--models/--datasets/--classes/--seeds is an error.")


def cell_name(protocol, dataset, model_name, profile, anomalous_class, seed):
    return os.path.join(protocol, dataset, f"{model_name}_{profile}", f"class{anomalous_class}_seed{seed}")


def cell_done(results_dir, cell):
    """A cell is done once its results JSON exists: `keep_cell` writes it last."""
    return os.path.exists(os.path.join(results_dir, cell_name(*cell) + ".json"))


def grid(models, datasets, classes, seeds, protocol, profile):
    """Class by class, so that a grid stopped early leaves whole rows (every model, every dataset)."""
    return [(protocol, d, m, profile, k, s) for s in seeds for k in classes for d in datasets
            for m in models]


def worker_env(workers, threads=None):
    """Environment of a cell: with several workers, each gets its share of the cores."""
    env = dict(os.environ)
    if threads is None and workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
    if threads:
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        env.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    return env


def run_cell(cell, results_dir, runs_dir, data_dir, experiments_dir, limit=None, env=None,
             test_curve=False):
    protocol, dataset, model_name, profile, anomalous_class, seed = cell
    name = cell_name(*cell)
    if cell_done(results_dir, cell):
        return name, "skipped (done)"
    run_dir = os.path.join(runs_dir, name)
    command = [sys.executable, "-m", "anomaly_toolbox.train", f"--model={model_name}",
               f"--dataset={dataset}", f"--anomalous_class={anomalous_class}",
               f"--protocol={protocol}", f"--train_seed={seed}", f"--output_dir={run_dir}",
               f"--config={os.path.join(experiments_dir, f'{model_name}_{dataset}_{profile}.json')}",
               "--verbose=2"] + ([f"--data_dir={data_dir}"] if data_dir else []) \
        + ([f"--limit={limit}"] if limit else []) + (["--record_test_curve"] if test_curve else [])
    started = time.time()
    with _LOCK:  # a cell a worker takes as the grid stops is not started
        if _STOPPING.is_set():
            return name, "not started (interrupted)"
        os.makedirs(run_dir, exist_ok=True)
        with open(RunDir(run_dir).file("train.log"), "a") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _RUNNING.add(proc)
    code = proc.wait()
    with _LOCK:
        _RUNNING.discard(proc)
    if code != 0:
        return name, f"FAILED (exit {code}, see {RunDir(run_dir).file('train.log')})"
    keep_cell(RunDir(run_dir), os.path.join(results_dir, name))
    return name, f"done in {time.time() - started:.0f}s"


def _stop_cells(number):
    """No cell starts from now on; the signal (`number`, SIGTERM or SIGINT) is passed on to the
    running cells' train processes, which end as on their own (cleanups run, no results kept):
    one sent to the runner alone (kill PID) did not reach them, and the pool waited while the
    cell trained to its end. A terminal's Ctrl-C reaches them twice then, which cli allows."""
    with _LOCK:
        _STOPPING.set()
        for proc in _RUNNING if number in (signal.SIGTERM, signal.SIGINT) else ():
            proc.send_signal(number)


def run_all(cells, workers, run):
    """[run(cell)] of every cell, `workers` at a time, each printed as it ends. Only the main
    thread starts cells, and a signal interrupts it first: with every cell queued in the pool, a
    worker whose cell Ctrl-C had ended (the terminal signals the group) could start the next one
    before the runner's handler ran, and the grid waited while that cell trained to its end."""
    queued, running, results = list(cells), set(), []
    with ThreadPoolExecutor(workers) as pool:
        try:
            while queued or running:
                while queued and len(running) < workers:
                    running.add(pool.submit(run, queued.pop(0)))
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for job in finished:
                    results.append(job.result())
                    print(*results[-1], flush=True)
        except BaseException as e:  # KeyboardInterrupt(SIGINT or SIGTERM) (cli)
            _stop_cells(e.args[0] if isinstance(e, KeyboardInterrupt) and e.args else None)
            raise
    return results


def keep_scores(scores, target):
    """`<target>.scores.npz`: a run's raw validation/test scores and labels, compressed."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    write_npz(target + ".scores.npz", compressed=True,
              **{k: scores[k].astype(np.float32 if "scores" in k else bool)
                 for k in ("val_scores", "val_labels", "test_scores", "test_labels")})


def keep_cell(run_dir, target):
    """Copies what a finished cell's table and ensembles need into the committed results:
    results.json and the raw validation/test scores with labels (compressed; no weights)."""
    keep_scores(run_dir.scores(), target)
    if os.path.exists(run_dir.test_curve_json):  # analysis only: the budget study's comparison
        rows = run_dir.read_json(run_dir.test_curve_json)
        write_atomic(target + ".test_curve.csv", "epoch,test_auprc,test_auroc\n" + "".join(
            f"{r['epoch']},{r['auprc']:.6f},{r['auroc']:.6f}\n" for r in rows))
    write_json(target + ".json", run_dir.results())  # last: its presence marks the cell done


def _cells():
    """The grid's cells after checking every flag, before anything runs."""
    from anomaly_toolbox import models
    from anomaly_toolbox.data import datasets
    from anomaly_toolbox.errors import UsageError

    for model_name in FLAGS.models:
        models.check(model_name)  # imports no model (and no TensorFlow)
    refuse_repeated_flags("models", "datasets")
    for dataset in FLAGS.datasets:
        if dataset not in datasets.DATASETS:
            raise UsageError("datasets", dataset, f"one of {', '.join(datasets.DATASETS)}")
        datasets.check(dataset, FLAGS.data_dir)  # a missing --data_dir: every cell FAILED
    if FLAGS.workers <= 0:
        raise UsageError("workers", FLAGS.workers, "a positive integer")
    if FLAGS.threads_per_worker is not None and FLAGS.threads_per_worker <= 0:
        raise UsageError("threads_per_worker", FLAGS.threads_per_worker, "a positive integer")
    index, count = parse_shard(FLAGS.shard)
    classes, seeds = check_grid(FLAGS.classes, FLAGS.seeds, FLAGS.protocol, FLAGS.limit)
    cells = grid(FLAGS.models, FLAGS.datasets, classes, seeds, FLAGS.protocol,
                 FLAGS.profile)[index::count]
    for model_name, dataset in {(c[2], c[1]) for c in cells}:
        path = os.path.join(_experiments(), f"{model_name}_{dataset}_{FLAGS.profile}.json")
        if not os.path.exists(path):
            raise UsageError("profile", FLAGS.profile, f"a profile with a file {path}")
    return cells


def check():
    """Every flag before TensorFlow loads (cli.main), as train's and sweep's are: a bad model
    or class answered only after its import (minutes on a busy machine); a --results_dir or
    --runs_dir that is a file was a traceback, and so was a --benchmarks_md that is a folder,
    after every cell had trained."""
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import check_writable_dir, check_writable_file

    _cells()
    if FLAGS.table_only and not os.path.isdir(FLAGS.results_dir):
        raise UsageError("results_dir", FLAGS.results_dir, "a folder of results files")
    check_writable_dir(FLAGS.results_dir, "results_dir")
    if not FLAGS.table_only:
        check_writable_dir(FLAGS.runs_dir, "runs_dir")
    check_writable_file(FLAGS.benchmarks_md, "benchmarks_md",  # report.write makes its folder
                        made_first=os.path.dirname(os.path.abspath(FLAGS.benchmarks_md)))


def _experiments():
    return FLAGS.experiments_dir or EXPERIMENTS


def check_merged(results_dir, cells):
    """(missing cell names, duplicates): a results file must sit at its own cell's path."""
    import glob
    import json

    seen, duplicates = {}, []
    for path in sorted(glob.glob(os.path.join(results_dir, "**", "*.json"), recursive=True)):
        with open(path) as f:
            r = json.load(f)
        if "_ensemble" in r.get("model", "") or "train_seed" not in r or r.get("peer"):
            continue  # derived cells; the peer's cells (peer_quality/) are not the grid's
        name = cell_name(r["protocol"], r["dataset"], r["model"], r["config"].get("profile"),
                         r["anomalous_class"], r["train_seed"]) + (
            f" (limit {r['limit']})" if r.get("limit") else "")
        if os.path.relpath(path, results_dir)[:-len(".json")] != name.split(" (")[0] \
                or name in seen:
            duplicates.append(f"{os.path.relpath(path, results_dir)} holds {name}"
                              + (f", also in {seen[name]}" if name in seen else ""))
        seen.setdefault(name, os.path.relpath(path, results_dir))
    missing = [cell_name(*c) for c in cells if not cell_done(results_dir, c)]
    return missing, duplicates


def body():
    from benchmarks import ensembles, report

    if not FLAGS.table_only:
        cells = _cells()
        os.makedirs(FLAGS.results_dir, exist_ok=True)  # the table is written even if no cell ends
        env = worker_env(FLAGS.workers, FLAGS.threads_per_worker)
        print(f"{len(cells)} cells, {FLAGS.workers} worker(s), "
              f"{env.get('TF_NUM_INTRAOP_THREADS', 'default')} thread(s) each", flush=True)
        failed = [name for name, status in run_all(cells, FLAGS.workers, lambda c: run_cell(
            c, FLAGS.results_dir, FLAGS.runs_dir, FLAGS.data_dir, _experiments(), FLAGS.limit,
            env, FLAGS.record_test_curve)) if status.startswith("FAILED")]
    else:
        from anomaly_toolbox.errors import DataError

        missing, duplicates = check_merged(FLAGS.results_dir, _cells())
        if duplicates:
            raise DataError("results hold duplicate or misplaced cells:\n  "
                            + "\n  ".join(duplicates))
        print(f"{len(missing)} cell(s) of the grid missing" + "".join(
            f"\n  {m}" for m in missing))
        if missing and FLAGS.require_complete:
            raise DataError(f"{len(missing)} cell(s) missing (--require_complete)")
    print(f"{ensembles.write_all(FLAGS.results_dir)} ensemble cells from the kept scores")
    report.write(FLAGS.results_dir, FLAGS.benchmarks_md)
    print(f"wrote {FLAGS.benchmarks_md}")
    if not FLAGS.table_only and failed:  # the table shows the cells that did finish; a script
        print(f"error: {len(failed)} of {len(cells)} cell(s) failed, see each one's train.log "
              f"under --runs_dir: {', '.join(failed)}", file=sys.stderr)  # or job array sees it
        sys.exit(1)


if __name__ == "__main__":
    cli.main(define_flags, body, check)
