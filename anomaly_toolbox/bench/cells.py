"""A results folder's cells, `<protocol>/<dataset>/<model>_<profile>/class<k>_seed<s>.json`, and
the files kept beside one (`<cell>.scores.npz`, `<cell>.test_curve.csv`)."""

import glob
import json
import os
from collections import Counter


def cell_files(results_dir):
    """Every cell's JSON, sorted (other JSON in results_dir, e.g. the speed report's, is not a cell)."""
    return sorted(glob.glob(os.path.join(results_dir, "*", "*", "*", "class*_seed*.json")))


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
