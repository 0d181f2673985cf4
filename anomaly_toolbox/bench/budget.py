"""The budget study's table: the papers' budget beside the `cpu` budget on the same cells, and,
for comparison only, what picking the best TEST epoch (as the reference GANomaly code does)
would have reported instead of the validation-selected epoch."""

import csv
import glob
import os

import numpy as np

from anomaly_toolbox.bench.cells import finished_cell


def test_curves(results_dir):
    """{(protocol, dataset, model, profile, class, seed): [(epoch, test AUPRC), ...]}."""
    curves = {}
    for path in glob.glob(os.path.join(results_dir, "**", "*.test_curve.csv"), recursive=True):
        finished = finished_cell(path, ".test_curve.csv")
        if not finished:  # a curve without its finished cell is not reported
            continue
        r = finished[1]
        with open(path) as f:
            rows = [(int(e["epoch"]), float(e["test_auprc"])) for e in csv.DictReader(f)]
        curves[(r["protocol"], r["dataset"], r["model"], r["config"].get("profile"),
                r["anomalous_class"], r["train_seed"])] = rows
    return curves


def _wall_minutes(result):
    wall = result.get("wall_time_s", {})
    return f"{(wall['train'] + wall.get('evaluate', 0)) / 60:.0f}" if "train" in wall else "—"


def section(rows, results_dir):
    """Markdown lines; empty when no cell recorded a test curve."""
    curves = test_curves(results_dir)
    if not curves:
        return []
    by_key = {(r["protocol"], r["dataset"], r["model"], r["config"].get("profile"),
               r["anomalous_class"], r["train_seed"]): r for r in rows}
    lines = ["## Budget study: the papers' budget against the `cpu` budget", "",
             "Test AUPRC of the epoch selected on validation, for the cells that ran at a larger "
             "budget, beside the same cell at the `cpu` budget. The last column is **for "
             "comparison only, never a result**: the best test AUPRC over epochs, i.e. what "
             "selecting the epoch on test data (as the reference GANomaly code does) would report.",
             "", "Wall is train + evaluate of the larger-budget cell (the budgets are matched in "
             "wall clock: EGBAD's `paper_clock` epochs are what a GANomaly `paper` cell's time buys).",
             "", "| protocol | dataset | class | seed | model | profile | epochs | wall (min) | "
             "`cpu` test AUPRC | test AUPRC (val-selected epoch) | best-test-epoch AUPRC "
             "(comparison only) |", "|---" * 11 + "|"]
    for key, curve in sorted(curves.items()):
        protocol, dataset, model_name, profile, k, seed = key
        result = by_key.get(key)
        if result is None:
            continue
        cpu = by_key.get((protocol, dataset, model_name, "cpu", k, seed))
        best_epoch, best = max(curve, key=lambda e: e[1])
        lines.append(
            f"| {protocol} | {dataset} | {k} | {seed} | {model_name} | `{profile}` | "
            f"{result['config']['epochs']} (selected {result['selected_epoch']}) | "
            f"{_wall_minutes(result)} | " + (f"{cpu['test']['auprc']:.3f}" if cpu else "—")
            + f" | {result['test']['auprc']:.3f} | {best:.3f} (epoch {best_epoch}; "
            f"+{best - result['test']['auprc']:.3f}) |")
    gaps = [max(a for _, a in c) - by_key[k]["test"]["auprc"] for k, c in curves.items()
            if k in by_key]
    lines += ["", f"Selecting on test would have added {np.mean(gaps):+.3f} test AUPRC on "
              f"average over these {len(gaps)} cells.", ""]
    return lines
