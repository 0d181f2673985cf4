"""Issue 15's "better accuracy within fewer training steps", at equal training compute: GANomaly's
seed ensemble of three 1-epoch runs (seeds 0, 1, 2) against one 3-epoch run (seed 0). Pairs
are classes, tested as the survey's claim is (claims.paired)."""

import numpy as np

from benchmarks import cells, claims
from benchmarks.ensembles import SEEDS_SUFFIX

SHORT, LONG = "1epoch", "3epochs"
ENSEMBLE, ONE_RUN = "ensemble", "3-epoch run"
WHY = ("Why this pair: GANomaly is the strongest single model of the `cpu` grid, so a gain there "
       "is a gain over the best; one against three epochs because the `cpu` budget's validation "
       "curves peak within 1-3 epochs, and three seeds are what the grid trains.")
COMMANDS = ("python -m benchmarks.benchmark --models=ganomaly "
            "--datasets=mnist,fashion_mnist --classes=0-9 --seeds=0,1,2 --profile=1epoch "
            "--data_dir=../shared/data",
            "python -m benchmarks.benchmark --models=ganomaly "
            "--datasets=mnist,fashion_mnist --classes=0-9 --seeds=0 --profile=3epochs "
            "--data_dir=../shared/data")


def per_class(groups):
    """{(protocol, dataset): {class: (ensemble AUPRC, 3-epoch AUPRC, mean 1-epoch run AUPRC)}}."""
    out = {}
    for (protocol, dataset, profile), group in sorted(groups.items()):
        if profile != LONG:
            continue
        short = groups.get((protocol, dataset, SHORT), [])
        ens = {r["anomalous_class"]: r["test"]["auprc"] for r in short
               if r["model"] == "ganomaly" + SEEDS_SUFFIX and r["train_seed"] == "0+1+2"}
        singles = {}
        for r in short:
            if r["model"] == "ganomaly":
                singles.setdefault(r["anomalous_class"], []).append(r["test"]["auprc"])
        long = {r["anomalous_class"]: r["test"]["auprc"] for r in group
                if r["model"] == "ganomaly" and r["train_seed"] == 0}
        rows = {k: (ens[k], long[k], float(np.mean(singles[k]))) for k in sorted(ens)
                if k in long}
        if rows:
            out[(protocol, dataset)] = rows
    return out


def summary(rows):
    """(ensemble mean, 3-epoch mean, paired test) over one dataset's (or both datasets') classes."""
    by_cell = {(name, key): [{"auprc": value[i]}] for key, value in rows.items()
               for i, name in enumerate((ENSEMBLE, ONE_RUN))}
    return (float(np.mean([v[0] for v in rows.values()])),
            float(np.mean([v[1] for v in rows.values()])),
            claims.paired(by_cell, list(rows), ENSEMBLE, ONE_RUN))


def sentences(rows):
    """For "What the numbers say": the ensemble against the long run, per dataset."""
    out = []
    for (protocol, dataset), by_class in per_class(cells.groups(rows)).items():
        ens, long, test = summary(by_class)
        out.append(f"At equal training compute on {dataset} ({protocol}, {len(by_class)} "
                   f"class{'es' * (len(by_class) != 1)}), GANomaly's ensemble of three 1-epoch runs "
                   f"has mean test AUPRC {ens:.3f} against {long:.3f} for one 3-epoch run, and is "
                   f"higher on {test['a_wins']} of {len(by_class)} classes "
                   f"({claims.verdict(test, ENSEMBLE, ONE_RUN)}).")
    return out


def section(rows):
    found = per_class(cells.groups(rows))
    if not found:
        return ""
    lines = ["## Fewer training steps: three 1-epoch runs against one 3-epoch run", "",
             WHY, "",
             "Equal training compute: the ensemble's members trained 3 × 1 epoch, the single "
             "run 1 × 3 epochs, at the `cpu` profile's widths and batch. The ensemble "
             "standardises each member on its validation normals and averages (as "
             "`python -m anomaly_toolbox.ensemble`); nothing is chosen on test data. The "
             "3-epoch run has one seed, so its seed-to-seed spread is not in this comparison.",
             "", "Commands (then `python -m benchmarks.benchmark --table_only`):", ""]
    lines += [f"    {c}" for c in COMMANDS] + [""]
    lines += ["| protocol | dataset | class | 1-epoch run (mean of 3 seeds) | 3 × 1-epoch ensemble "
              "| 1 × 3-epoch run | ensemble − 3-epoch |", "|---" * 7 + "|"]
    for (protocol, dataset), rows in found.items():
        for k, (ens, long, single) in rows.items():
            lines.append(f"| {protocol} | {dataset} | {k} | {single:.3f} | {ens:.3f} | {long:.3f} "
                         f"| {ens - long:+.3f} |")
    lines += ["", "| protocol | dataset | classes | ensemble mean | 3-epoch mean | ensemble higher "
              "on | p (Wilcoxon) | verdict |", "|---" * 8 + "|"]
    for protocol in sorted({p for p, _ in found}):
        mine = [(d, rows) for (p, d), rows in found.items() if p == protocol]
        if len(mine) > 1:
            mine.append(("both", {(d, k): v for d, rows in mine for k, v in rows.items()}))
        for dataset, rows in mine:
            ens, long, test = summary(rows)
            p = "—" if test["p"] is None else f"{test['p']:.3f}"
            lines.append(f"| {protocol} | {dataset} | {len(rows)} | {ens:.3f} | {long:.3f} | "
                         f"{test['a_wins']} of {len(rows)} | {p} | "
                         f"{claims.verdict(test, ENSEMBLE, ONE_RUN)} |")
    return "\n".join(lines + [""])
