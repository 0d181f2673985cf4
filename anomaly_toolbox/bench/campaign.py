"""A reproduction campaign that outlives sessions: `experiments/campaigns/round2.json` lists its
parts in order, each a grid run by the benchmark of a clone frozen at one commit.

  python -m anomaly_toolbox.bench.campaign --plan                 # what remains, and how long
  python -m anomaly_toolbox.bench.campaign --hours=2.5 --commit   # run what fits, commit cells

Each part runs class by class (every run of the part for class k, then k + 1), so a campaign
stopped at any moment leaves whole classes; finished cells are skipped and interrupted ones
resume from their checkpoints in the clone's run folders. The clones live in `--clones_dir`
(`frozen_<commit>`), the cells land in this repository's `results/`; with `--commit` each
finished cell is committed as soon as its files are complete. Estimates come from the
wall times of the cells already in `results/` (same model, dataset, profile and protocol; else
the part's prior `minutes_per_cell`, which says where it comes from).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
from absl import flags

from anomaly_toolbox import cli
from anomaly_toolbox.bench import benchmark, ensembles
from anomaly_toolbox.bench.cells import cell_files
from anomaly_toolbox.errors import UsageError

FLAGS = flags.FLAGS
STARTED = time.time()
PART_KEYS = {"name", "issue", "commit", "module", "protocol", "datasets", "classes", "runs",
             "minutes_per_cell", "why"}
RUN_KEYS = {"models", "profile", "seeds", "record_test_curve"}
CELL_FILE = re.compile(r"^results/[^/]+/[^/]+/[^/]+/class\d+_seed\d+"
                       r"\.(json|scores\.npz|test_curve\.csv)$")


def define_flags():
    flags.DEFINE_string("campaign", os.path.join(benchmark.REPO, "experiments", "campaigns",
                                                 "round2.json"),
                        "The campaign's parts, in the order they run.")
    flags.DEFINE_list("parts", None, "Only these parts (default: all, in order).")
    flags.DEFINE_bool("plan", False, "Print what remains of each part and its estimated wall "
                      "time, then stop.")
    flags.DEFINE_float("hours", None, "Start no class whose estimated wall time would end after "
                       "this many hours (a session's remaining time).")
    flags.DEFINE_bool("commit", False, "git-commit each finished cell's files in this repository.")
    flags.DEFINE_string("clones_dir", os.path.dirname(benchmark.REPO),
                        "Where the frozen clones (frozen_<commit>) are made.")
    flags.DEFINE_string("data_dir", None, "Passed to the benchmark.")
    flags.DEFINE_integer("workers", 2, "Passed to the benchmark.")


def load(path, only=None):
    """The campaign's parts, checked before anything runs."""
    with open(path) as f:
        parts = json.load(f)["parts"]
    names = [p.get("name") for p in parts]
    for part in parts:
        where = f"campaign part {part.get('name')!r}"
        if set(part) - PART_KEYS or not {"name", "commit", "datasets", "classes", "runs"} <= set(part):
            raise UsageError(where, sorted(part), f"keys among {sorted(PART_KEYS)}")
        if not (7 <= len(part["commit"]) <= 40 and all(c in "0123456789abcdef" for c in part["commit"])):
            raise UsageError(f"{where} commit", part["commit"], "a hex commit id")
        for run in part["runs"]:
            if set(run) - RUN_KEYS or not {"models", "profile", "seeds"} <= set(run):
                raise UsageError(f"{where} run", sorted(run), f"keys among {sorted(RUN_KEYS)}")
        benchmark.parse_classes(part["classes"])
    for name in only or []:
        if name not in names:
            raise UsageError("parts", name, f"one of {', '.join(names)}")
    return [p for p in parts if not only or p["name"] in only]


def class_cells(part, k):
    """[(run, cells)] of one class, in the order the part runs them."""
    return [(run, benchmark.grid(run["models"], part["datasets"], [k], run["seeds"],
                                 part.get("protocol", "pooled"), run["profile"]))
            for run in part["runs"]]


def done(results_dir, cell):
    return os.path.exists(os.path.join(results_dir, benchmark.cell_name(*cell) + ".json"))


def measured_minutes(results_dir, since=None):
    """{(protocol, dataset, model, profile): mean minutes of one cell} over the finished cells;
    with `since` (a time), cells written after it override the others: machines and their load
    differ between sessions by up to 3x (a 3-epoch GANomaly cell: 32 min in one, 9 in the next)."""
    times, fresh = {}, {}
    for path in cell_files(results_dir):
        with open(path) as f:
            r = json.load(f)
        seconds = r.get("wall_time_s", {}).get("total_this_invocation")  # none: derived cells
        key = (r["protocol"], r["dataset"], r["model"], r["config"].get("profile"))
        if seconds:  # a resumed cell's last piece only: an underestimate, and rare
            for k in (key, ("*",) + key[1:]):  # "*": any protocol, the next best guess
                times.setdefault(k, []).append(seconds / 60)
                if since and os.path.getmtime(path) >= since:
                    fresh.setdefault(k, []).append(seconds / 60)
    return {k: float(np.mean(v)) for k, v in {**times, **fresh}.items()}


def estimate(cells, minutes, prior, workers):
    """Wall minutes of cells run `workers` at a time (None when nothing measured or given)."""
    each = [minutes.get(c[:4], minutes.get(("*",) + c[1:4], prior)) for c in cells]
    return None if None in each else sum(each) / min(workers, max(len(cells), 1))


def plan(parts, results_dir, workers):
    minutes = measured_minutes(results_dir)
    lines = ["| part | issue | commit | cells done | remaining | est. wall (h) |",
             "|---|---|---|---|---|---|"]
    for part in parts:
        cells = [c for k in benchmark.parse_classes(part["classes"])
                 for _, cs in class_cells(part, k) for c in cs]
        left = [c for c in cells if not done(results_dir, c)]
        wall = estimate(left, minutes, part.get("minutes_per_cell"), workers)
        lines.append(f"| {part['name']} | {part.get('issue', '—')} | {part['commit'][:7]} | "
                     f"{len(cells) - len(left)} of {len(cells)} | {len(left)} | "
                     f"{'?' if wall is None else f'{wall / 60:.1f}'} |")
    return lines


def clone(commit, clones_dir):
    """A clone of this repository checked out at `commit` (made once, reused)."""
    path = os.path.join(clones_dir, f"frozen_{commit[:7]}")
    if not os.path.isdir(path):
        subprocess.run(["git", "clone", "--quiet", benchmark.REPO, path], check=True)
        subprocess.run(["git", "-C", path, "checkout", "--quiet", commit], check=True)
    return path


def keep_old_scores(results_dir, runs_dir):
    """A clone older than kept scores copies only results.json: keep its run's scores too."""
    for path in cell_files(results_dir):
        cell = os.path.relpath(path, results_dir)[:-len(".json")]
        source = os.path.join(runs_dir, cell, "scores.npz")
        if not os.path.exists(path[:-5] + ".scores.npz") and os.path.exists(source):
            benchmark.keep_scores(dict(np.load(source)), path[:-5])


def commit_finished(repo, label):
    """Commits every new cell under `repo`/results/ whose .json and .scores.npz both exist (the
    .json is written last, so a cell in progress is never committed half); nothing else."""
    status = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=all",
                             "--", "results"], capture_output=True, text=True).stdout
    files = [line[3:] for line in status.splitlines() if CELL_FILE.search(line[3:])]
    cells = sorted({f.split(".")[0] for f in files if all(
        os.path.exists(os.path.join(repo, f.split(".")[0] + end)) for end in (".json", ".scores.npz"))})
    paths = [f for f in files if f.split(".")[0] in cells]
    if paths:
        subprocess.run(["git", "-C", repo, "add", "--"] + paths, check=True)
        names = " ".join(c[len("results/"):] for c in cells)
        subprocess.run(["git", "-C", repo, "commit", "--quiet", "-m", f"Results: {names} ({label})",
                        "--"] + paths, check=False)  # a busy index: the next round commits them
    return cells


def run_part(part, deadline):
    """Runs the part class by class; False when the deadline stopped it."""
    path = clone(part["commit"], FLAGS.clones_dir)
    results_dir = os.path.join(benchmark.REPO, "results")
    runs_dir = os.path.join(path, "runs", "benchmark")
    label = f"{part['name']}, issue {part.get('issue', '—')}; frozen clone {part['commit'][:7]}"
    stop = threading.Event()

    def keep_and_commit():
        while not stop.wait(60):
            keep_old_scores(results_dir, runs_dir)
            if FLAGS.commit:
                commit_finished(benchmark.REPO, label)
    watcher = threading.Thread(target=keep_and_commit, daemon=True)
    watcher.start()
    try:
        for k in benchmark.parse_classes(part["classes"]):
            for run, cells in class_cells(part, k):
                left = [c for c in cells if not done(results_dir, c)]
                if not left:
                    continue
                wall = estimate(left, measured_minutes(results_dir, since=STARTED),
                                part.get("minutes_per_cell"), FLAGS.workers)
                about = "?" if wall is None else f"{wall:.0f}"
                if deadline and (wall is None or time.time() + wall * 60 > deadline):
                    print(f"{part['name']}: class {k} ({run['profile']}) needs about {about} min; "
                          "stopping here", flush=True)
                    return False
                command = [sys.executable, "-m", part.get("module", "anomaly_toolbox.bench.benchmark"),
                           f"--models={','.join(run['models'])}",
                           f"--datasets={','.join(part['datasets'])}", f"--classes={k}",
                           f"--seeds={','.join(str(s) for s in run['seeds'])}",
                           f"--protocol={part.get('protocol', 'pooled')}",
                           f"--profile={run['profile']}", f"--results_dir={results_dir}",
                           f"--runs_dir={runs_dir}", f"--workers={FLAGS.workers}",
                           f"--benchmarks_md={os.path.join(path, 'benchmarks.md')}"] + \
                    ([f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []) + \
                    (["--record_test_curve"] if run.get("record_test_curve") else [])
                print(f"{time.strftime('%H:%M')} {part['name']}: class {k}, {len(left)} cells "
                      f"({run['profile']}), about {about} min", flush=True)
                subprocess.run(command, cwd=path)
                keep_old_scores(results_dir, runs_dir)
                ensembles.write_all(results_dir)  # derived cells by this code, not the clone's
    finally:
        stop.set()
        keep_old_scores(results_dir, runs_dir)
        if FLAGS.commit:
            commit_finished(benchmark.REPO, label)
    return True


def body():
    if FLAGS.hours is not None and not FLAGS.hours > 0:
        raise UsageError("hours", FLAGS.hours, "a positive number of hours")
    if FLAGS.workers <= 0:
        raise UsageError("workers", FLAGS.workers, "a positive integer")
    parts = load(FLAGS.campaign, FLAGS.parts)
    print("\n".join(plan(parts, os.path.join(benchmark.REPO, "results"), FLAGS.workers)), flush=True)
    if FLAGS.plan:
        return
    deadline = time.time() + FLAGS.hours * 3600 if FLAGS.hours else None
    for part in parts:
        if not run_part(part, deadline):
            break


if __name__ == "__main__":
    cli.main(define_flags, body)
