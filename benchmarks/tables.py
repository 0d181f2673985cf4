"""The result tables of benchmarks.md: the summary (one line per table), then per protocol x
dataset x profile its setting, budgets, wall times, test AUPRC and AUROC by class with the
paired claim test, and its bar chart."""

import os

import numpy as np

from benchmarks import claims, ensembles
from benchmarks.cells import CLASSES, by_cell, groups, hardware, machine, wall_seconds

COMMAND = ("python -m benchmarks.benchmark --models={models} --datasets={dataset} "
           "--classes=0-9 --seeds={seeds} --protocol={protocol} --profile={profile} "
           "--data_dir=../shared/data")


def _fmt(values):
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f} (n=1)"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n={len(values)})"


def _budget(rows):
    cfg = rows[0]["config"]
    m = cfg["model"]
    if "members" in m:  # an ensemble cell: its members' budgets are in their own rows
        return "mean of standardised scores of " + ", ".join(sorted(
            {member.rsplit(" seed", 1)[0] for member in m["members"]})) + (
            " (one seed)" if rows[0]["model"].startswith("gan3") else " (all seeds)")
    parts = [f"{cfg['epochs']} epoch{'s' * (cfg['epochs'] != 1)}", f"batch {cfg['batch_size']}", f"filters {m.get('filters')}"]
    if "search_steps" in m:  # AnoGAN: the latent search is part of the budget
        start = (f"best of {m['search_k']} starts" if m.get("search_init") == "best_of_k"
                 else f"{m.get('search_init', 'zeros')} start")
        parts += [f"search Γ = {m['search_steps']} steps from {start}", f"lambda {m['lambda_']}"]
    return ", ".join(parts)


def _wall_by_machine(rows):
    """Mean wall time per cell, split by hardware when the cells ran on more than one kind: a
    model whose cells ran mostly on the slower CPUs must not look like the slower model."""
    by_machine = {}
    for r in rows:
        by_machine.setdefault(machine(r), []).append(wall_seconds(r) / 60)
    if len(by_machine) == 1:
        return f"{np.mean(next(iter(by_machine.values()))):.1f} min"
    return "; ".join(f"{np.mean(w):.1f} min on {m} ({len(w)} cell{'s' * (len(w) != 1)})"
                     for m, w in sorted(by_machine.items()))


def _metric_table(by_cell, models, classes, metric):
    lines = ["| class | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for k in classes:
        lines.append(f"| {k} | " + " | ".join(
            _fmt([r[metric] for r in by_cell.get((m, k), [])]) for m in models) + " |")
    lines.append("| **mean** | " + " | ".join(_mean_label(by_cell, m, classes, [metric])
                                               for m in models) + " |")
    return lines


def _seed_mean(by_cell, model_name, k, metric):
    """Mean over training seeds of one (model, class) cell; NaN when the cell has no result."""
    rows = by_cell.get((model_name, k))
    return float(np.mean([r[metric] for r in rows])) if rows else float("nan")


def _class_mean(by_cell, model_name, classes, metric):
    """Mean over classes of the per-class mean over seeds, and how many classes it covers."""
    per_class = [_seed_mean(by_cell, model_name, k, metric) for k in classes if (model_name, k) in by_cell]
    return (float(np.mean(per_class)) if per_class else None), len(per_class)


def _mean_label(by_cell, model_name, classes, metrics, seeds=False):
    """'0.600 / 0.700 (2 of 10 classes, 1–2 seeds per class)': the counts the mean rests on."""
    values = [_class_mean(by_cell, model_name, classes, metric) for metric in metrics]
    covered = values[0][1]
    if not covered:
        return "—"
    notes = [f"{covered} of {len(classes)} classes"] if covered < len(classes) else []
    if seeds:
        n = [len(by_cell[(model_name, k)]) for k in classes if (model_name, k) in by_cell]
        notes.append(f"{min(n)} seed{'s' * (min(n) != 1)}" if min(n) == max(n)
                     else f"{min(n)}–{max(n)} seeds per class")
    label = " / ".join(f"{mean:.3f}" for mean, _ in values)
    return label + (f" ({', '.join(notes)})" if notes else "")


def columns(rows):
    """The trained models, then the ensembles derived from them."""
    return sorted({r["model"] for r in rows}, key=lambda m: (ensembles.is_ensemble(m), m))


def summary(rows):
    """One line per table: the mean test AUPRC and AUROC of each model, to compare at a glance."""
    tables = groups(rows)
    if not tables:
        return "No results yet.\n"
    models = columns(rows)
    lines = ["## Summary: mean over anomalous classes of test AUPRC / AUROC", "",
             "Each class's seeds are averaged first, so every class weighs the same.", "",
             "| dataset | protocol | profile | " + " | ".join(models) + " |",
             "|---" * (len(models) + 3) + "|"]
    for (protocol, dataset, profile), group in sorted(tables.items()):
        table = by_cell(group)
        cells = [_mean_label(table, m, CLASSES, ["auprc", "auroc"], seeds=True) for m in models]
        lines.append(f"| {dataset} | {protocol} | `{profile}` | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def _chart_name(protocol, dataset, profile):
    return f"benchmark_{protocol}_{dataset}_{profile.split(',')[0]}.png"


def section(rows):
    """Every table, in (protocol, dataset, profile) order."""
    out = []
    for (protocol, dataset, profile), group in sorted(groups(rows).items()):
        models = columns(group)
        trained = [m for m in models if not ensembles.is_ensemble(m)]
        cells = [r for r in group if r["model"] in trained]  # ensembles: derived, not run
        table = by_cell(group)
        seeds = sorted({r["train_seed"] for r in cells})
        present = {(r["model"], r["anomalous_class"], r["train_seed"]) for r in cells}
        missing = len(trained) * len(CLASSES) * len(seeds) - len(present)
        shares = [r["splits"]["test_anomaly_share"] for r in cells]
        tf_versions = sorted({r["versions"]["tensorflow"] for r in cells})
        settings = sorted({", ".join(f"{k}={r['versions'].get(k, 'unset')}" for k in
                                     ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS"))
                           for r in cells})
        total = sum(wall_seconds(r) for r in cells)
        out += [f"## {dataset}, {protocol} protocol, `{profile}` profile", "",
                f"- Test anomaly share: {min(shares):.1%} – {max(shares):.1%} (by class); a random "
                "scorer's expected AUPRC equals it (dashed line in the chart).",
                f"- Hardware, CPU only (wall times depend on it): {hardware(cells)}.",
                f"- TensorFlow {', '.join(tf_versions)}; {'; '.join(settings)}.",
                "- Command: `" + COMMAND.format(
                    models=",".join(trained), dataset=dataset, protocol=protocol, profile=profile,
                    seeds=",".join(str(s) for s in seeds)) + "`",
                f"- Missing trained cells (model x class x seed): {missing} of "
                f"{len(trained) * len(CLASSES) * len(seeds)}.",
                f"- Total wall time of the {len(cells)} trained cells (train + evaluate, as measured per "
                f"cell; cells may have run two at a time): {total / 3600:.2f} h.", ""]
        out += ["| model | budget | mean wall time per cell (train + evaluate; an ensemble's is "
                "the sum of its members', not a cost of its own) |", "|---|---|---|"]
        for m in models:
            rs = [r for r in group if r["model"] == m]
            out.append(f"| {m} | {_budget(rs)} | {_wall_by_machine(rs)} |")
        out += ["", "Test AUPRC:", ""] + _metric_table(table, models, CLASSES, "auprc")
        out += ["", "Test AUROC:", ""] + _metric_table(table, models, CLASSES, "auroc") + [""]
        out += claims.claim_lines(table, CLASSES)
        name = _chart_name(protocol, dataset, profile)
        out += [f"![{dataset} AUPRC by class](figures/{name})", ""]
    return "\n".join(out)


def figures(rows, figures_dir):
    """Each table's bar chart: test AUPRC by class, trained models and the 3-GAN ensemble."""
    for (protocol, dataset, profile), group in sorted(groups(rows).items()):
        models = columns(group)
        trained = [m for m in models if not ensembles.is_ensemble(m)]
        shares = [r["splits"]["test_anomaly_share"] for r in group if r["model"] in trained]
        os.makedirs(figures_dir, exist_ok=True)
        charted = trained + [m for m in models if m == "gan3_ensemble"]
        _chart(by_cell(group), charted, CLASSES,
               os.path.join(figures_dir, _chart_name(protocol, dataset, profile)),
               f"{dataset}, {protocol}, {profile}: test AUPRC by anomalous class "
               "(error bars: std over seeds)", float(np.mean(shares)))


def _seed_std(by_cell, model_name, k, metric):
    """Sample std over seeds for the chart's error bars; NaN (no bar) below 2 seeds."""
    values = [r[metric] for r in by_cell.get((model_name, k), [])]
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _chart(by_cell, models, classes, path, title, chance):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 3.5))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        means = [_seed_mean(by_cell, m, k, "auprc") for k in classes]
        spread = [_seed_std(by_cell, m, k, "auprc") for k in classes]
        ax.bar(np.arange(len(classes)) + i * width, means, width, yerr=spread, capsize=2, label=m)
    ax.axhline(chance, color="gray", linestyle="--", linewidth=1,
               label="random scorer\n(AUPRC = anomaly share)")
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, [str(k) for k in classes])
    ax.set_xlabel("anomalous class")
    ax.set_ylabel("test AUPRC")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
