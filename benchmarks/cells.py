"""A results folder's cells, `<protocol>/<dataset>/<model>_<profile>/class<k>_seed<s>.json`, and
the files kept beside one (`<cell>.scores.npz`, `<cell>.test_curve.csv`)."""

import csv
import glob
import json
import os
from collections import Counter, defaultdict

CLASSES = list(range(10))  # the anomalous classes every table lists


def cell_files(results_dir):
    """Every cell's JSON, sorted (other JSON in results_dir, e.g. the speed report's, is not a cell)."""
    return sorted(glob.glob(os.path.join(results_dir, "*", "*", "*", "class*_seed*.json")))


def load(results_dir):
    """Every cell's results, each with its kept test curve (`row["test_curve"]`: [(epoch, test
    AUPRC, test AUROC)]) when it recorded one: the rows are all a study reads."""
    rows = []
    for path in cell_files(results_dir):
        with open(path) as f:
            rows.append(json.load(f))
        curve = path[:-len(".json")] + ".test_curve.csv"
        if os.path.exists(curve):
            with open(curve) as f:
                rows[-1]["test_curve"] = [(int(e["epoch"]), float(e["test_auprc"]),
                                           float(e["test_auroc"])) for e in csv.DictReader(f)]
    return rows


def groups(rows):
    """{(protocol, dataset, profile): rows}, one per table; smoke runs on a few images are kept
    apart from real results."""
    out = defaultdict(list)
    for r in rows:
        profile = r["config"].get("profile", "?")
        if r.get("limit"):
            profile += f", smoke: {r['limit']} images per split"
        out[(r["protocol"], r["dataset"], profile)].append(r)
    return out


def by_cell(group):
    """{(model, class): [test metrics and wall times of each seed]} of one table's rows."""
    out = defaultdict(list)
    for r in group:
        out[(r["model"], r["anomalous_class"])].append({**r["test"], **r["wall_time_s"]})
    return out


def cell_key(result):
    """(protocol, dataset, model, profile, class, seed): a cell's identity."""
    return (result["protocol"], result["dataset"], result["model"],
            result["config"].get("profile"), result["anomalous_class"], result["train_seed"])


def finished_cell(kept_path, suffix):
    """(cell path without extension, its results) for a file kept beside a cell, or None while
    the cell has not finished. Model and profile come from the cell's JSON, never from its folder
    name: "_" may be in either (`egbad_cpu_bf16`)."""
    cell = kept_path[:-len(suffix)]
    if not os.path.exists(cell + ".json"):
        return None
    with open(cell + ".json") as f:
        return cell, json.load(f)


def wall_seconds(result):
    """A cell's wall time as its JSON recorded it, train + evaluate (an ensemble's: its members'
    sum); None when the JSON records no training time."""
    wall = result.get("wall_time_s", {})
    return wall["train"] + wall.get("evaluate", 0) if "train" in wall else None


def machine(result):
    """The hardware a cell recorded; cells from before provenance.vector_isa say so."""
    name = result["versions"]["machine"]
    return name if "," in name else name + ", vector set not recorded"


def hardware(results):
    """"<machine>: <n> cells; ..." over the cells, for a table's hardware line."""
    counts = Counter(machine(r) for r in results)
    return "; ".join(f"{m}: {n} cell{'s' * (n != 1)}" for m, n in sorted(counts.items()))
