"""The whole budget curve from the papers'-budget cells, with no extra training.

A k-epoch run trains exactly the first k epochs of a longer run with the same seed (each epoch's
batch order depends only on the seed and the epoch number, and no setting depends on the total),
selects the best VALIDATION epoch among 1..k (the first one on ties, as training does) and reports
that epoch's test metrics. So every budget k up to a cell's epochs is read from the cell's history
(validation metrics and seconds per epoch) and its test curve (an analysis file: here it is only
looked up at the epoch validation chose). benchmarks/tests/test_budget_curve.py proves the equivalence on a
real tiny run.
"""

import os

import numpy as np

from benchmarks import budget, claims
from benchmarks.cells import cell_key, hardware

MODELS = (claims.CHALLENGER, claims.INCUMBENT)


def selected_epoch(rows, first_selectable=1):
    """Training's selection over history rows ({"epoch", "val_auprc"}): strictly better
    validation AUPRC, so the first epoch wins ties (no val_auprc: no validation anomalies, the
    latest epoch)."""
    best, selected = -np.inf, None
    for h in rows:
        if h["epoch"] >= first_selectable and h.get("val_auprc", np.inf) > best:
            best, selected = h.get("val_auprc", np.inf), h["epoch"]
    return selected


def prefix_result(history, curve, k, first_selectable=1):
    """What a k-epoch run reports: {"epoch", "auprc", "auroc", "minutes"}; minutes are k x the
    cell's median epoch time (training and validation scoring). Epochs train alike, but a stop
    for a timing or a CI run beside the cell stretched some of them (up to 10x in the campaign's
    logs): the median is the cell's typical epoch, which those do not move; a sum would."""
    rows = [h for h in history if h["epoch"] <= k]
    if len(rows) < k:
        raise ValueError(f"history has {len(rows)} of the {k} epochs asked for")
    selected = selected_epoch(rows, first_selectable)
    test = curve[selected]
    return {"epoch": selected, "auprc": test[0], "auroc": test[1],
            "minutes": k * float(np.median([h["seconds"] for h in history])) / 60}


def cell_curves(rows):
    """{(protocol, dataset, model, class, seed): [prefix_result(k) for k = 1..epochs]} of the
    papers'-budget cells of GANomaly and EGBAD that kept a test curve."""
    by_key = {cell_key(r): r for r in rows}
    out = {}
    for cell, curve in budget.test_curves(rows, with_auroc=True).items():
        result = by_key.get(cell)
        if result is None or cell[2] not in MODELS or cell[3] not in budget.BUDGET_PROFILES:
            continue
        points = {e: (auprc, auroc) for e, auprc, auroc in curve}
        out[cell[:3] + cell[4:]] = [prefix_result(result["history"], points, k)
                                  for k in range(1, result["config"]["epochs"] + 1)]
    return out


def _at_minutes(curve, minutes):
    """The longest prefix whose training took at most `minutes` (at least one epoch)."""
    fits = [p for p in curve if p["minutes"] <= minutes + 1e-9]
    return fits[-1] if fits else curve[0]


def comparisons(curves, cpu_rows):
    """The paired EGBAD - GANomaly test over classes, per (protocol, dataset), at (a) each model's
    full budget, (b) equal wall clock (the longer cell cut to the shorter one's minutes), (c) the
    `cpu` budget on the same classes. {(protocol, dataset): {label: claims.paired(...)}}."""
    out = {}
    for protocol, dataset in sorted({k[:2] for k in curves}):
        def cell(model, k, seed):
            return curves.get((protocol, dataset, model, k, seed))
        pairs = sorted({(k[3], k[4]) for k in curves if k[:2] == (protocol, dataset)
                        if all(cell(m, *k[3:]) for m in MODELS)})
        full, clock, cpu = {}, {}, {}
        for k, seed in pairs:
            a, b = (cell(m, k, seed) for m in MODELS)
            full.setdefault((MODELS[0], k), []).append(a[-1])
            full.setdefault((MODELS[1], k), []).append(b[-1])
            minutes = min(a[-1]["minutes"], b[-1]["minutes"])
            clock.setdefault((MODELS[0], k), []).append(_at_minutes(a, minutes))
            clock.setdefault((MODELS[1], k), []).append(_at_minutes(b, minutes))
            for m in MODELS:
                cpu.setdefault((m, k), []).extend(
                    r["test"] for r in cpu_rows
                    if (r["protocol"], r["dataset"], r["model"], r["anomalous_class"],
                        r["train_seed"]) == (protocol, dataset, m, k, seed))
        classes = sorted({k for k, _ in pairs})
        out[(protocol, dataset)] = {label: claims.paired(by_cell, classes)
                                    for label, by_cell in (("full budget", full),
                                                           ("equal wall clock", clock),
                                                           ("`cpu` budget", cpu))}
    return out


def paired(curves):
    """The curves of the (class, seed) pairs both models ran, so that means compare alike."""
    both = lambda k: all(k[:2] + (m,) + k[3:] in curves for m in MODELS)  # noqa: E731
    return {k: c for k, c in curves.items() if both(k)}


def mean_curve(curves, protocol, dataset, model):
    """[(k, mean test AUPRC, mean minutes, n cells)] over the cells that reached epoch k."""
    cells = [c for key, c in curves.items() if key[:3] == (protocol, dataset, model)]
    longest = max((len(c) for c in cells), default=0)
    return [(k, float(np.mean([c[k - 1]["auprc"] for c in cells if len(c) >= k])),
             float(np.mean([c[k - 1]["minutes"] for c in cells if len(c) >= k])),
             sum(len(c) >= k for c in cells)) for k in range(1, longest + 1)]


def _figure(curves, path):
    """Mean test AUPRC (validation-selected) against epochs and against minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({k[:2] for k in curves})
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.2 * len(groups)), squeeze=False)
    for row, (protocol, dataset) in zip(axes, groups):
        for model in MODELS:
            points = mean_curve(curves, protocol, dataset, model)
            if points:
                k, auprc, minutes, n = zip(*points)
                label = f"{model} (n = {n[0]})"
                row[0].plot(k, auprc, marker=".", label=label)
                row[1].plot(minutes, auprc, marker=".", label=label)
        for ax, x in zip(row, ("epochs", "wall-clock minutes (k × median epoch)")):
            ax.set(xlabel=x, ylabel="mean test AUPRC", title=f"{dataset}, {protocol}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


SHOWN_EPOCHS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 42)
FIGURE = os.path.join("figures", "budget_curve.png")
COMMAND = ("python -m benchmarks.campaign "
           "--campaign=benchmarks/campaigns/round3.json --workers=1 --commit")


def _precisions(rows, curves):
    """Which precision each seed's papers'-budget cells ran in (the issue's rule: one per seed)."""
    keys = {k[:3] + (k[4],) for k in curves}
    by_seed = {}
    for r in rows:
        if (r["protocol"], r["dataset"], r["model"], r["train_seed"]) in keys and \
                r["config"].get("profile") in budget.BUDGET_PROFILES:
            by_seed.setdefault(r["train_seed"], set()).add(r["config"].get("precision", "float32"))
    return "; ".join(f"seed {s}: {', '.join(sorted(p))}" for s, p in sorted(by_seed.items()))


def _test_row(label, test):
    mean = f"{np.mean(test['diffs']):+.3f}" if test["n"] else "—"
    p = "—" if test["p"] is None else f"{test['p']:.3f}"
    return (f"| {label} | {test['n']} | {test['a_wins']} | {test['b_wins']} | {mean} | {p} | "
            f"{claims.verdict(test)} |")


def ensemble_lines(rows):
    """The EGBAD + GANomaly ensemble at the papers' budget (derived from kept scores) against
    its members on the same classes and seeds."""
    from benchmarks.ensembles import PAPERS_BUDGET, PAPERS_BUDGET_ENSEMBLE

    out = []
    for protocol, dataset in sorted({(r["protocol"], r["dataset"]) for r in rows
                                     if r["model"] == PAPERS_BUDGET_ENSEMBLE}):
        auprc = {(r["model"], r["config"].get("profile"), r["anomalous_class"], r["train_seed"]):
                 r["test"]["auprc"] for r in rows
                 if (r["protocol"], r["dataset"]) == (protocol, dataset)}
        cells = sorted((k, s) for m, p, k, s in auprc if m == PAPERS_BUDGET_ENSEMBLE)
        mean = {name: np.mean([auprc[(m, p, k, s)] for k, s in cells])
                for name, (m, p) in (("ensemble", (PAPERS_BUDGET_ENSEMBLE, PAPERS_BUDGET[0][1])),
                                     *((m, (m, p)) for m, p in PAPERS_BUDGET))}
        best = max(PAPERS_BUDGET, key=lambda mp: mean[mp[0]])[0]
        above = sum(auprc[(PAPERS_BUDGET_ENSEMBLE, PAPERS_BUDGET[0][1], k, s)] >
                    max(auprc[(m, p, k, s)] for m, p in PAPERS_BUDGET) for k, s in cells)
        out.append(f"- {dataset}, {protocol}: the EGBAD + GANomaly ensemble (each member at its "
                   f"papers' budget; robust standardisation on validation normals, mean) has mean "
                   f"test AUPRC {mean['ensemble']:.3f} over {len(cells)} cells, against "
                   f"{mean['ganomaly']:.3f} for GANomaly and {mean['egbad']:.3f} for EGBAD on the "
                   f"same cells; above its better member ({best} on average) in {above} of "
                   f"{len(cells)}.")
    return ["", "The EGBAD + GANomaly ensemble, derived from the kept scores with no retraining:",
            ""] + out if out else []


def figures(rows, figures_dir):
    """figures/budget_curve.png, when there are curves of both models."""
    curves = paired(cell_curves(rows))
    if curves:
        _figure(curves, os.path.join(figures_dir, os.path.basename(FIGURE)))


def section(rows):
    """Markdown; empty without curves of both models."""
    everything = cell_curves(rows)
    curves = paired(everything)
    waiting = sorted(f"{k[1]} {k[2]} class {k[3]} seed {k[4]}" for k in everything if k not in curves)
    if not curves:
        return ""
    cpu_rows = [r for r in rows if r["config"].get("profile") == "cpu"]
    out = ["## The budget curve: test AUPRC against the training budget", "",
           f"Regenerate the cells: `{COMMAND}` (then `--campaign=... --parts=paper_seed0_"
           "fashion_mnist`); this section comes with `benchmarks.md` from "
           "`python -m benchmarks.benchmark --table_only`.", "",
           "Each cell is a GANomaly `paper` run (15 epochs) or an EGBAD `paper_clock` run "
           "(42 epochs, its paper's settings for the wall clock of a GANomaly `paper` cell). A "
           "budget of k epochs reports what a k-epoch run would: the test metrics of the best "
           "**validation** epoch among epochs 1..k (the test curve is only looked up at that "
           "epoch; `benchmarks/tests/test_budget_curve.py` checks the equivalence on a real run). Minutes "
           "are k × the cell's median epoch time (train + validation seconds, as recorded): the "
           "median leaves out the epochs that a stop or a CI run beside the cell stretched, not "
           f"a load that lasted the whole cell (see the hardware line). Precision: {_precisions(rows, curves)}. Only "
           "classes both models ran are shown" + (f"; waiting for their pair: {'; '.join(waiting)}"
                                                  if waiting else "") + ".", "",
           f"![budget curve]({FIGURE})", ""]
    for protocol, dataset in sorted({k[:2] for k in curves}):
        means = {m: {k: (a, mins, n) for k, a, mins, n in mean_curve(curves, protocol, dataset, m)}
                 for m in MODELS}
        out += [f"### {dataset}, {protocol}: mean test AUPRC (mean minutes, cells)", "",
                "| epochs | " + " | ".join(MODELS) + " |", "|---" * (len(MODELS) + 1) + "|"]
        for k in SHOWN_EPOCHS:
            if any(k in means[m] for m in MODELS):
                out.append(f"| {k} | " + " | ".join(
                    f"{means[m][k][0]:.3f} ({means[m][k][1]:.0f} min, {means[m][k][2]})"
                    if k in means[m] else "—" for m in MODELS) + " |")
        out.append("")
    out += ["### EGBAD − GANomaly, paired over classes (Wilcoxon signed-rank, two-sided)", "",
            "| protocol | dataset | budget | classes | EGBAD wins | GANomaly wins | mean "
            "difference | p | verdict |", "|---" * 9 + "|"]
    for (protocol, dataset), tests in comparisons(curves, cpu_rows).items():
        out += [f"| {protocol} | {dataset} " + _test_row(label, t)
                for label, t in tests.items()]
    out += ensemble_lines(rows)
    machines = hardware([r for r in rows if (r["protocol"], r["dataset"], r["model"],
                                r["anomalous_class"], r["train_seed"]) in curves
                                and r["config"].get("profile") in budget.BUDGET_PROFILES])
    return "\n".join(out + ["", f"Hardware of these cells: {machines}.", ""])


def sentences(rows):
    """For "What the numbers say": the survey's question at the papers' budget, per dataset."""
    curves = paired(cell_curves(rows))
    cpu_rows = [r for r in rows if r["config"].get("profile") == "cpu"]
    out = []
    for (protocol, dataset), tests in comparisons(curves, cpu_rows).items():
        full, small = tests["full budget"], tests["`cpu` budget"]
        seeds = ", ".join(str(s) for s in sorted({k[4] for k in curves if k[:2] == (protocol, dataset)}))
        out.append(
            f"At the papers' budget ({dataset}, {protocol}, seed {seeds}, {full['n']} of 10 "
            f"classes), EGBAD − GANomaly test AUPRC is {np.mean(full['diffs']):+.3f} on average "
            f"(EGBAD ahead on {full['a_wins']}): {claims.verdict(full)}; on the same classes at "
            f"`cpu` it is {np.mean(small['diffs']):+.3f} ({claims.verdict(small)}).")
    return out
