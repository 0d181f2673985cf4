"""A reproduction campaign that outlives sessions: `benchmarks/campaigns/round2.json` lists its
parts in order, each a grid run by the benchmark of a clone frozen at one commit.

  python -m benchmarks.campaign --plan                 # what remains, and how long
  python -m benchmarks.campaign --hours=2.5 --commit   # run what fits, commit cells
  python -m benchmarks.campaign --models=egbad ...     # one model's runs only

Each part runs class by class (every run of the part for class k, then k + 1), so a campaign
stopped at any moment leaves whole classes; finished cells are skipped and interrupted ones
resume from their checkpoints in the clone's run folders. The clones live in `--clones_dir`
(`frozen_<commit>`), the cells land in this repository's `benchmarks/results/` (the clone's
benchmark is given that folder, whatever its own layout); with `--commit` each finished cell is
committed as soon as its files are complete, and after each class's run the report follows in
its own commit (`benchmarks/publish.py`: benchmarks.md, figures, README quotes). Estimates come from the wall times of the cells
already in `benchmarks/results/` (same model, dataset, profile and protocol; else
the part's prior `minutes_per_cell`, which says where it comes from).
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
from absl import flags

from anomaly_toolbox import cli
from benchmarks import CAMPAIGNS, REPO, RESULTS, benchmark
from benchmarks.campaign_file import load, only_models
from benchmarks.cells import cell_files
from benchmarks.publish import commit_finished, keep_old_scores, report
from anomaly_toolbox.errors import UsageError

FLAGS = flags.FLAGS
STARTED = time.time()


def define_flags():
    flags.DEFINE_string("campaign", os.path.join(CAMPAIGNS, "round2.json"),
                        "The campaign's parts, in the order they run.")
    flags.DEFINE_list("parts", None, "Only these parts (default: all, in order).")
    flags.DEFINE_bool("plan", False, "Print what remains of each part and its estimated wall "
                      "time, then stop.")
    flags.DEFINE_float("hours", None, "Start no class whose estimated wall time would end after "
                       "this many hours (a session's remaining time).")
    flags.DEFINE_bool("commit", False, "git-commit each finished cell's files in this repository, "
                      "then the regenerated report.")
    flags.DEFINE_string("clones_dir", os.path.dirname(REPO),
                        "Where the frozen clones (frozen_<commit>) are made.")
    flags.DEFINE_list("models", None, "Only these models' runs of each part: a class whose "
                      "cells do not fit one session together runs model by model (the report "
                      "pairs them once both are in).")
    flags.DEFINE_string("data_dir", None, "Passed to the benchmark.")
    flags.DEFINE_integer("workers", 2, "Passed to the benchmark.")


def check():
    """The campaign file, checked before TensorFlow is imported (no start-up lines before the
    error)."""
    if FLAGS.hours is not None and not FLAGS.hours > 0:
        raise UsageError("hours", FLAGS.hours, "a positive number of hours")
    if FLAGS.workers <= 0:
        raise UsageError("workers", FLAGS.workers, "a positive integer")
    parts = load(FLAGS.campaign, FLAGS.parts)
    for name in FLAGS.models or []:
        if not only_models(parts, [name]):
            raise UsageError("models", name, "a model of the chosen parts' runs: " + ", ".join(
                sorted({m for p in parts for r in p["runs"] for m in r["models"]})))


def class_cells(part, k):
    """[(run, cells)] of one class, in the order the part runs them."""
    return [(run, benchmark.grid(run["models"], part["datasets"], [k], run["seeds"],
                                 part.get("protocol", "pooled"), run["profile"]))
            for run in part["runs"]]


def measured_minutes(results_dir, since=None):
    """{(protocol, dataset, model, profile): median minutes of one cell} over the finished cells
    (a median: a cell in flight while the campaign was paused carries the pause in its time);
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
    return {k: float(np.median(v)) for k, v in {**times, **fresh}.items()}


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
        left = [c for c in cells if not benchmark.cell_done(results_dir, c)]
        wall = estimate(left, minutes, part.get("minutes_per_cell"), workers)
        lines.append(f"| {part['name']} | {part.get('issue', '—')} | {part['commit'][:7]} | "
                     f"{len(cells) - len(left)} of {len(cells)} | {len(left)} | "
                     f"{'?' if wall is None else f'{wall / 60:.1f}'} |")
    return lines


def _head(repo, rev="HEAD"):
    out = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", rev + "^{commit}"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def clone(part, clones_dir):
    """A clone of this repository at the part's commit: made in a scratch folder and moved into
    place only once checked out, and checked again on every reuse (never the wrong code)."""
    commit = _head(REPO, part["commit"])
    if not commit:
        raise UsageError(f"campaign part {part['name']!r} commit", part["commit"],
                         "a commit of this repository")
    path = os.path.join(clones_dir, f"frozen_{commit[:7]}")
    if not os.path.isdir(path):
        scratch = path + ".partial"
        shutil.rmtree(scratch, ignore_errors=True)
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", REPO, scratch],
                       check=True)
        subprocess.run(["git", "-C", scratch, "checkout", "--quiet", commit], check=True)
        os.replace(scratch, path)
    if _head(path) != commit:
        raise UsageError("clones_dir", path, f"a clone at {commit[:7]} (it holds another commit: "
                         "move it away)")
    return path


def benchmark_module(part, clone_path):
    """The grid runner of the clone's own layout, unless the part names one: clones made before
    the bench left the package (issue 41) have `anomaly_toolbox.bench.benchmark`."""
    if "module" in part:
        return part["module"]
    if os.path.exists(os.path.join(clone_path, "benchmarks", "benchmark.py")):
        return "benchmarks.benchmark"
    return "anomaly_toolbox.bench.benchmark"


def _command(part, run, k, path, results_dir):
    return [sys.executable, "-m", benchmark_module(part, path),
            f"--models={','.join(run['models'])}", f"--datasets={','.join(part['datasets'])}",
            f"--classes={k}", f"--seeds={','.join(str(s) for s in run['seeds'])}",
            f"--protocol={part.get('protocol', 'pooled')}", f"--profile={run['profile']}",
            f"--results_dir={results_dir}", f"--runs_dir={os.path.join(path, 'runs', 'benchmark')}",
            f"--workers={FLAGS.workers}", f"--benchmarks_md={os.path.join(path, 'benchmarks.md')}",
            ] + ([f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []) + (
        ["--record_test_curve"] if run.get("record_test_curve") else [])


def run_part(part, deadline):
    """Runs the part class by class: "done", "deadline" (its next class does not fit) or
    "failed" (a cell did not finish)."""
    from benchmarks import ensembles  # imports TensorFlow: never before `check`

    path = clone(part, FLAGS.clones_dir)
    results_dir = RESULTS
    runs_dir = os.path.join(path, "runs", "benchmark")
    label = f"{part['name']}, issue {part.get('issue', '—')}; frozen clone {part['commit'][:7]}"
    stop, git = threading.Event(), threading.Lock()

    def keep_and_commit():
        with git:
            keep_old_scores(results_dir, runs_dir)
            if FLAGS.commit:
                commit_finished(REPO, label)

    def watch():
        while not stop.wait(60):
            try:
                keep_and_commit()
            except Exception as e:  # noqa: BLE001  (the next round tries again)
                print(f"committing cells failed ({e}); trying again in a minute", flush=True)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for k in benchmark.parse_classes(part["classes"]):
            runs = [(run, [c for c in cells if not benchmark.cell_done(results_dir, c)])
                    for run, cells in class_cells(part, k)]
            runs = [(run, left) for run, left in runs if left]
            minutes = measured_minutes(results_dir, since=STARTED)
            walls = [estimate(left, minutes, part.get("minutes_per_cell"), FLAGS.workers)
                     for _, left in runs]
            wall = None if None in walls else sum(walls)
            about = "?" if wall is None else f"{wall:.0f}"
            if runs and deadline and (wall is None or time.time() + wall * 60 > deadline):
                print(f"{part['name']}: class {k} needs about {about} min; not starting it",
                      flush=True)
                return "deadline"
            for run, left in runs:  # the whole class: every run of the part for class k
                print(f"{time.strftime('%H:%M')} {part['name']}: class {k}, {len(left)} cells "
                      f"({run['profile']}), class about {about} min", flush=True)
                subprocess.run(_command(part, run, k, path, results_dir), cwd=path)
                with git:
                    keep_old_scores(results_dir, runs_dir)
                    ensembles.write_all(results_dir)  # derived cells by this code, not the clone's
                    if FLAGS.commit:  # the cells, then the report that shows them
                        commit_finished(REPO, label)
                        report(REPO, label)
                failed = [benchmark.cell_name(*c) for c in left if not benchmark.cell_done(results_dir, c)]
                if failed:  # a cell that failed (the benchmark exits 1): stop and look
                    print(f"{part['name']}: {len(failed)} cell(s) did not finish, see their "
                          f"train.log under {runs_dir}: {', '.join(failed)}", flush=True)
                    return "failed"
    finally:
        stop.set()
        watcher.join()
        keep_and_commit()
    return "done"


def body():
    parts = only_models(load(FLAGS.campaign, FLAGS.parts), FLAGS.models)
    print("\n".join(plan(parts, RESULTS, FLAGS.workers)), flush=True)
    if FLAGS.plan:
        return
    deadline = time.time() + FLAGS.hours * 3600 if FLAGS.hours else None
    waiting = []  # parts whose next class did not fit: a later part's smaller class may still
    for part in parts:  # fit, and the order only says which part goes first when time allows
        ended = run_part(part, deadline)
        if ended == "failed":
            break
        if ended == "deadline":
            waiting.append(part["name"])
    if waiting:
        print(f"not finished for lack of time: {', '.join(waiting)} (the same command resumes "
              "them first)", flush=True)


if __name__ == "__main__":
    cli.main(define_flags, body, check)
