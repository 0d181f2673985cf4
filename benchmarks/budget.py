"""The budget study's table: the papers' budget beside the `cpu` budget on the same cells, and,
for comparison only, what picking the best TEST epoch (as the reference GANomaly code does)
would have reported instead of the validation-selected epoch."""

import numpy as np

from benchmarks import cells
from benchmarks.cells import cell_key, hardware, wall_seconds

BUDGET_PROFILES = ("paper", "paper_clock")  # GANomaly's published budget; EGBAD at its clock


def test_curves(rows, with_auroc=False):
    """{cell key: [(epoch, test AUPRC[, test AUROC]), ...]} of the cells that kept a test curve."""
    return {cell_key(r): [e[:3] if with_auroc else e[:2] for e in r["test_curve"]]
            for r in rows if "test_curve" in r}


def _matched(groups):
    """{(protocol, dataset, model, class, seed): (papers'-budget row, `cpu` row)} of the cells
    that ran at both budgets."""
    cpu = {(p, d, r["model"], r["anomalous_class"], r["train_seed"]): r
           for (p, d, profile), g in groups.items() if profile == "cpu" for r in g}
    out = {}
    for (p, d, profile), g in groups.items():
        for r in g:
            key = (p, d, r["model"], r["anomalous_class"], r["train_seed"])
            if profile in BUDGET_PROFILES and key in cpu:
                out[key] = (r, cpu[key])
    return out


def sentences(rows):
    """For "What the numbers say": per model, the papers' budget against `cpu` on the same cells,
    and whether EGBAD - GANomaly changes sign between the budgets on the cells both ran."""
    matched = _matched(cells.groups(rows))
    out = []
    for model in sorted({k[2] for k in matched}):
        pairs = [v for k, v in sorted(matched.items()) if k[2] == model]
        big = np.mean([b["test"]["auprc"] for b, _ in pairs])
        small = np.mean([c["test"]["auprc"] for _, c in pairs])
        higher = sum(b["test"]["auprc"] > c["test"]["auprc"] for b, c in pairs)
        out.append(f"At the papers' budget (`{pairs[0][0]['config']['profile']}`, "
                   f"{pairs[0][0]['config']['epochs']} epochs), {model}'s mean test AUPRC over its "
                   f"{len(pairs)} budget-study cell{'s' * (len(pairs) != 1)} is {big:.3f} against "
                   f"{small:.3f} for the same cells at `cpu`, higher on {higher} of {len(pairs)}.")
    auprc = lambda k, model, budget: matched[k[:2] + (model,) + k[3:]][budget]["test"]["auprc"]  # noqa: E731
    both = [k for k in matched if k[2] == "egbad" and k[:2] + ("ganomaly",) + k[3:] in matched]
    if both:  # budget 0: the papers', 1: `cpu`
        gap = [[auprc(k, "egbad", b) - auprc(k, "ganomaly", b) for k in both] for b in (0, 1)]
        out.append(f"On the {len(both)} cell{'s' * (len(both) != 1)} both models ran at both "
                   f"budgets, EGBAD − GANomaly test AUPRC is {np.mean(gap[0]):+.3f} at the papers' "
                   f"budget against {np.mean(gap[1]):+.3f} at `cpu` (EGBAD ahead on "
                   f"{sum(g > 0 for g in gap[0])} and {sum(g > 0 for g in gap[1])} of them); too few "
                   "cells for a test.")
    return out


def _signed(x):
    """+0.000, never -0.000: the curve's CSV and results.json round the same AUPRC apart."""
    return f"{round(float(x), 3) + 0.0:+.3f}"


def _wall_minutes(result):
    seconds = wall_seconds(result)
    return "—" if seconds is None else f"{seconds / 60:.0f}"


def _tracking(curves, by_key):
    """Why test selection gains little or much: how closely each epoch's validation AUPRC
    follows its test AUPRC, and on how many validation images."""
    fits = []
    for key, curve in curves.items():
        if key not in by_key:  # as in the table: a curve without its cell is not reported
            continue
        val = {h["epoch"]: h.get("val_auprc") for h in by_key[key].get("history", [])}
        pairs = [(val[e], a) for e, a in curve if val.get(e) is not None]
        if len(pairs) >= 3:
            v, t = np.array(pairs).T
            fits.append((np.corrcoef(v, t)[0, 1], np.abs(v - t).max(),
                         by_key[key]["splits"]["val"]))
    if not fits:
        return ""
    r, gap, n = zip(*fits)
    return (f" Per epoch, validation AUPRC against test AUPRC: Pearson r ≥ {min(r):.3f} in each "
            f"of these {len(fits)} cells, largest gap {max(gap):.3f}, on {min(n)}–{max(n)} "
            "validation images per cell.")


def section(rows):
    """Markdown; empty when no cell recorded a test curve."""
    curves = test_curves(rows)
    if not curves:
        return ""
    by_key = {cell_key(r): r for r in rows}
    lines = ["## Budget study: the papers' budget against the `cpu` budget", "",
             "Test AUPRC of the epoch selected on validation, for the cells that ran at a larger "
             "budget, beside the same cell at the `cpu` budget. The last column is **for "
             "comparison only, never a result**: the best test AUPRC over epochs, i.e. what "
             "selecting the epoch on test data (as the reference GANomaly code does) would report.",
             "", "Wall is train + evaluate of the larger-budget cell as recorded, stops and other "
             "loads included (the budget curve's minutes are k × the cell's median epoch time "
             "instead). The budgets are matched in wall clock: EGBAD's `paper_clock` epochs are "
             "what a GANomaly `paper` cell's time buys.",
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
            f"{_signed(best - result['test']['auprc'])}) |")
    listed = [by_key[k] for k in curves if k in by_key]
    gaps = [max(a for _, a in c) - by_key[k]["test"]["auprc"] for k, c in curves.items()
            if k in by_key]
    same = sum(g < 1e-5 for g in gaps)  # the curve's CSV keeps 6 decimals
    lines += ["", f"Selecting on test would have added {_signed(np.mean(gaps))} test AUPRC on "
              f"average over these {len(gaps)} cells; the validation-selected epoch was also the "
              f"best test epoch on {same} of {len(gaps)}." + _tracking(curves, by_key), "",
              f"Hardware of these cells: {hardware(listed)}. The wall clocks match only on the kind "
              "of CPU that `paper_clock`'s epochs were measured on (its profile's description "
              "names it); on another, the wall column shows by how much they differ.", ""]
    return "\n".join(lines)
