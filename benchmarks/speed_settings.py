"""Process-level speed settings, which can only be compared across fresh processes.

  python -m benchmarks.speed_settings --models=ganomaly,egbad --profiles=cpu

* oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=0 vs 1, read once when TensorFlow is imported): train
  img/s of children run alternately (off, on, on, off, ...), the median ratio, and the largest
  score difference of the same seeded weights scored under both settings (float tolerance).
* Benchmark workers: one child with TensorFlow's default threads vs two children at once with one
  intra/inter-op thread each (what `benchmarks.benchmark --workers=2` does): total img/s;
  and, with --cells, whole cells: the same small grid (--cells models x MNIST classes 0 and 1,
  `cpu` profile, --cell_limit images per split) run by `benchmarks.benchmark` with
  --workers=1 and --workers=2, wall time and whether the test AUPRCs agree.

Children time tf.function(train_step) like `benchmarks.speed` (warm-up, median of
windows).
The section is written to <results_dir>/speed_settings.md and appended to benchmarks.md.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from functools import partial

from absl import flags

from anomaly_toolbox import cli
from benchmarks import BENCHMARKS_MD, RESULTS, child_env, report
from benchmarks.grid_flags import refuse_repeated_flags

FLAGS = flags.FLAGS
CHILD = "import sys; from benchmarks.speed_settings import child; child(sys.argv[1])"
REPORT = report.SPEED_SETTINGS_REPORT


def define_flags():
    flags.DEFINE_list("models", ["ganomaly", "egbad"], "Registered model names.")
    flags.DEFINE_list("profiles", ["cpu"], "Profiles: experiments/<model>_mnist_<profile>.json.")
    flags.DEFINE_integer("rounds", 2, "oneDNN off/on pairs per model (alternating order).")
    flags.DEFINE_integer("windows", 5, "Timed windows per child (the median is used).")
    flags.DEFINE_integer("window_steps", 10, "Train steps per timed window.")
    flags.DEFINE_list("cells", [], "Models of the whole-cell worker comparison (empty: skip).")
    flags.DEFINE_integer("cell_limit", 2000, "Images per split in the whole-cell comparison.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")
    flags.DEFINE_string("results_dir", RESULTS, "Where speed_settings.md is written.")
    flags.DEFINE_string("benchmarks_md", BENCHMARKS_MD, "Table to regenerate with the section.")


def child(spec_path):
    """Runs in a fresh process: times the train step, scores seeded weights, prints JSON."""
    import numpy as np

    from benchmarks import timing, workload
    from anomaly_toolbox.data import datasets
    from anomaly_toolbox.run.scoring import score_images

    with open(spec_path) as f:
        spec = json.load(f)
    cfg = spec["config"]
    raw = datasets.load("mnist", spec["data_dir"])
    model = workload.build(spec["model"], cfg["model"])
    scores = score_images(model, raw.x_test[:256])  # seeded initial weights, before any step
    step = workload.compiled_step(model)
    batches = workload.real_batches(raw.x_train, cfg["batch_size"])

    def fn(i):
        return step(batches[i % len(batches)])

    timing.timed_windows(fn, 1, 3)  # trace + warm-up
    seconds = timing.timed_windows(fn, spec["windows"], spec["window_steps"])
    np.save(spec["scores_path"], scores)
    print(json.dumps({"img_s": cfg["batch_size"] * spec["window_steps"] / statistics.median(seconds)}))


def _start(spec, env, tmp, tag):
    path = os.path.join(tmp, f"{tag}.json")
    with open(path, "w") as f:
        json.dump({**spec, "scores_path": os.path.join(tmp, f"{tag}.npy")}, f)
    return subprocess.Popen([sys.executable, "-c", CHILD, path], env=child_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _finish(proc):
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"speed child failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])["img_s"]


def compare(model, config, data_dir, rounds=2, windows=5, window_steps=10):
    """One row: oneDNN off vs on, and one default-thread worker vs two 1-thread workers.

    `config` is a resolved config (batch_size, model, profile)."""
    import numpy as np

    spec = {"model": model, "config": config, "data_dir": data_dir, "windows": windows,
            "window_steps": window_steps}
    one_thread = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        off, on, score_diff = [], [], 0.0
        for r in range(rounds):
            for setting in (("0", "1") if r % 2 == 0 else ("1", "0")):
                img_s = _finish(_start(spec, {"TF_ENABLE_ONEDNN_OPTS": setting}, tmp, f"dnn{setting}"))
                (on if setting == "1" else off).append(img_s)
            a, b = np.load(os.path.join(tmp, "dnn0.npy")), np.load(os.path.join(tmp, "dnn1.npy"))
            score_diff = max(score_diff, float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12)))
        single = _finish(_start(spec, {"TF_ENABLE_ONEDNN_OPTS": "1"}, tmp, "single"))
        pair = [_start(spec, {"TF_ENABLE_ONEDNN_OPTS": "1", **one_thread}, tmp, f"pair{i}")
                for i in range(2)]
        pair_img_s = [_finish(p) for p in pair]
    return {"model": model, "profile": config.get("profile", "?"), "onednn_off_img_s": statistics.median(off),
            "onednn_on_img_s": statistics.median(on),
            "onednn_speedup": statistics.median(b / a for a, b in zip(off, on)),
            "onednn_max_rel_score_diff": score_diff, "one_worker_img_s": single,
            "two_workers_img_s": sum(pair_img_s),
            "two_workers_speedup": sum(pair_img_s) / single}


def compare_cells(models, data_dir, limit, experiments_dir=None):
    """Wall time of one small grid run with 1 worker (default threads) and with 2 workers."""
    import glob
    import time

    out = {"models": list(models), "limit": limit}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            base = os.path.join(tmp, f"w{workers}")
            command = [sys.executable, "-m", "benchmarks.benchmark",
                       f"--models={','.join(models)}", "--datasets=mnist", "--classes=0,1",
                       "--profile=cpu", f"--limit={limit}", f"--workers={workers}",
                       f"--results_dir={base}/results", f"--runs_dir={base}/runs",
                       f"--benchmarks_md={base}/benchmarks.md"] + \
                ([f"--data_dir={data_dir}"] if data_dir else []) + \
                ([f"--experiments_dir={experiments_dir}"] if experiments_dir else [])
            t0 = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=child_env())
            out[f"workers{workers}_s"] = time.perf_counter() - t0
            out[f"workers{workers}_auprc"] = {}
            for path in sorted(glob.glob(os.path.join(base, "results", "**", "*.json"), recursive=True)):
                with open(path) as f:
                    out[f"workers{workers}_auprc"][os.path.relpath(path, base)] = json.load(f)["test"]["auprc"]
    out["cells"] = len(out["workers1_auprc"])
    out["speedup"] = out["workers1_s"] / out["workers2_s"]
    out["same_results"] = out["workers1_auprc"] == out["workers2_auprc"]
    return out


def render(rows, command, cells=None):
    lines = ["## Speed: process-level settings", "", f"Command: `{command}`", "",
             "| model | profile | oneDNN off img/s | on img/s | on/off speed | max score difference "
             "(relative) | 1 worker x default threads img/s | 2 workers x 1 thread img/s (total) | "
             "2x1 / 1x2 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['profile']} | {r['onednn_off_img_s']:.0f} | "
                     f"{r['onednn_on_img_s']:.0f} | **{r['onednn_speedup']:.2f}x** | "
                     f"{r['onednn_max_rel_score_diff']:.1e} | {r['one_worker_img_s']:.0f} | "
                     f"{r['two_workers_img_s']:.0f} | **{r['two_workers_speedup']:.2f}x** |")
    lines += ["", "Children alternate so load drifts hit both settings; worker rows use oneDNN on. "
              "oneDNN changes kernels, so scores of the same weights differ by float rounding "
              "(column 6) and GAN training trajectories differ after many steps; it is on by default "
              "(the commands set it: `anomaly_toolbox/cli.py`), and `benchmarks.benchmark` defaults to 2 "
              "workers of CPU count // 2 threads each."]
    if cells:
        lines += ["", f"Whole cells ({cells['cells']} cells: {', '.join(cells['models'])} x MNIST classes 0, 1, "
                  f"`cpu` profile, {cells['limit']} images per split): 1 worker (default threads) "
                  f"{cells['workers1_s']:.0f} s, 2 workers x 1 thread {cells['workers2_s']:.0f} s, "
                  f"**{cells['speedup']:.2f}x**; test AUPRCs "
                  f"{'identical' if cells['same_results'] else 'DIFFER'} between the two."]
    return "\n".join(lines) + "\n"


def body():
    from benchmarks.workload import config

    rows = []
    for profile in FLAGS.profiles:
        for model in FLAGS.models:
            cfg = config(model, profile)
            rows.append(compare(model, cfg, FLAGS.data_dir, FLAGS.rounds, FLAGS.windows,
                                FLAGS.window_steps))
            print(json.dumps(rows[-1]), flush=True)
    cells = None
    if FLAGS.cells:
        cells = compare_cells(FLAGS.cells, FLAGS.data_dir, FLAGS.cell_limit)
        print(json.dumps(cells), flush=True)
    command = (f"python -m benchmarks.speed_settings --models={','.join(FLAGS.models)} "
               f"--profiles={','.join(FLAGS.profiles)} --rounds={FLAGS.rounds}"
               + (f" --cells={','.join(FLAGS.cells)} --cell_limit={FLAGS.cell_limit}" if FLAGS.cells else ""))
    text = render(rows, command, cells)
    print(text)
    report.write_section(FLAGS.results_dir, REPORT, text)
    report.write(FLAGS.results_dir, FLAGS.benchmarks_md)


if __name__ == "__main__":
    cli.main(define_flags, body, partial(refuse_repeated_flags, "models", "profiles", "cells"))
