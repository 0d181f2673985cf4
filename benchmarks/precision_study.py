"""The bfloat16 quality gate (issue 17): cells trained at a `<profile>_bf16` profile (the profile
exactly, in mixed bfloat16) beside the same cells in float32, judged against float32's own
seed-to-seed spread. `models/precision.py`'s BFLOAT16_QUALITY_VERIFIED lists the models that
passed here; `--precision=auto` picks bfloat16 only for them.

Gate, per model and over its cells (dataset x class): bfloat16 passes when
  1. the mean |bf16 - f32| of the cells' seed means, both over the seeds that ran in both
     precisions, is at most float32's seed-to-seed standard deviation (sample std over all its
     seeds, averaged over the same cells), and
  2. a two-sided Wilcoxon signed-rank test over the (cell, seed) pairs that ran in both
     precisions finds no shift (p >= 0.05); pairs are seeds, not cells, because 4 cells could
     never reach p < 0.05 (the exact test's smallest p is 0.125 at n = 4).
"""

from collections import defaultdict

import numpy as np

from benchmarks.ensembles import is_ensemble

SUFFIX = "_bf16"
ALPHA = 0.05


def _cells(rows):
    """{(protocol, dataset, model, base profile, class): {"bf16": {seed: auprc}, "f32": {...}}}."""
    cells = defaultdict(lambda: {"bf16": {}, "f32": {}})
    for r in rows:
        profile = r["config"].get("profile") or ""
        if r.get("limit") or is_ensemble(r["model"]):
            continue
        base, kind = (profile[:-len(SUFFIX)], "bf16") if profile.endswith(SUFFIX) else (profile, "f32")
        cells[(r["protocol"], r["dataset"], r["model"], base, r["anomalous_class"])][kind][
            r["train_seed"]] = r["test"]["auprc"]
    return {k: v for k, v in cells.items()
            if v["bf16"].keys() & v["f32"].keys() and len(v["f32"]) >= 2}


def _mean(by_seed):
    return float(np.mean(list(by_seed.values())))


def _shared_mean(v, kind):
    """Mean over the seeds that ran in both precisions, so seed noise is not counted as a
    precision difference."""
    shared = v["bf16"].keys() & v["f32"].keys()
    return float(np.mean([v[kind][s] for s in shared]))


def gate(cells):
    """{(protocol, model, base profile): verdict dict} over the cells that have both precisions."""
    from scipy.stats import wilcoxon

    groups = defaultdict(list)
    for (protocol, dataset, model, base, k), v in sorted(cells.items()):
        groups[(protocol, model, base)].append(v)
    verdicts = {}
    for key, vs in groups.items():
        diffs = np.array([_shared_mean(v, "bf16") - _shared_mean(v, "f32") for v in vs])
        spread = float(np.mean([np.std(list(v["f32"].values()), ddof=1) for v in vs]))
        pairs = np.array([v["bf16"][s] - v["f32"][s] for v in vs for s in v["bf16"] if s in v["f32"]])
        if len(pairs) >= 2 and np.any(pairs != 0):
            p = float(wilcoxon(pairs).pvalue)
        else:  # identical results show no shift; a single pair cannot be tested
            p = 1.0 if len(pairs) >= 2 else None
        within = float(np.mean(np.abs(diffs))) <= spread
        verdicts[key] = {"n": len(vs), "pairs": len(pairs), "mean_diff": float(diffs.mean()),
                         "mean_abs_diff": float(np.mean(np.abs(diffs))), "spread": spread, "p": p,
                         "passes": bool(within and p is not None and p >= ALPHA)}
    return verdicts


def verdicts(rows):
    """gate() of result rows: what `--precision=auto` must follow (tests bind it to results/)."""
    return gate(_cells(rows))


COMMANDS = {  # how each base profile's gate cells were run (their float32 seed-0 cells' source)
    "cpu": "`python -m benchmarks.benchmark --models=ganomaly,egbad --datasets=mnist,fashion_mnist "
           "--classes=1,5 --seeds=0,1 --profile=cpu_bf16` (float32: the `cpu` grid's cells)",
    "paper": "`python -m benchmarks.campaign --campaign=benchmarks/campaigns/round3.json "
             "--parts=paper_bf16_gate` (bfloat16 seeds 0 and 1, float32 seed 1; float32 seed 0: "
             "the `paper_seed0_*` parts' cells)",
}


def _command(base):
    command = COMMANDS.get(base, f"`python -m benchmarks.benchmark --profile={base}_bf16` beside "
                                 f"`--profile={base}`, the same cells")
    return f"`{base}` cells: {command}."


def _listed(by_seed):
    return ", ".join(f"s{s} {a:.3f}" for s, a in sorted(by_seed.items()))


def section(rows):
    """Markdown; empty when no cell ran in bfloat16 beside >= 2 float32 seeds."""
    cells = _cells(rows)
    if not cells:
        return ""
    lines = ["## Precision study: bfloat16 against float32", "",
             "Test AUPRC of cells trained and scored in mixed bfloat16 (profile `<profile>_bf16`: "
             "the same config with `\"precision\": \"mixed_bfloat16\"`) beside the same cells in "
             "float32. " + " ".join(_command(base) for base in sorted({k[3] for k in cells})), "",
             "| protocol | dataset | model | profile | class | float32 (seeds) | float32 seed std | "
             "bfloat16 (seeds) | bf16 − f32 (means over shared seeds) |", "|---" * 9 + "|"]
    for (protocol, dataset, model, base, k), v in sorted(cells.items()):
        f32, b16 = v["f32"], v["bf16"]
        lines.append(
            f"| {protocol} | {dataset} | {model} | `{base}` | {k} | {_mean(f32):.3f} "
            f"({_listed(f32)}) | {np.std(list(f32.values()), ddof=1):.3f} | "
            f"{_mean(b16):.3f} ({_listed(b16)}) | "
            f"{_shared_mean(v, 'bf16') - _shared_mean(v, 'f32'):+.3f} |")
    lines += ["", "| protocol | model | profile | cells (seed pairs) | mean bf16 − f32 | mean abs. difference | "
              "float32 seed std (mean over cells) | Wilcoxon p | gate |", "|---" * 9 + "|"]
    for (protocol, model, base), g in sorted(gate(cells).items()):
        p = "—" if g["p"] is None else f"{g['p']:.3f}"
        lines.append(f"| {protocol} | {model} | `{base}` | {g['n']} ({g['pairs']}) | {g['mean_diff']:+.3f} | "
                     f"{g['mean_abs_diff']:.3f} | {g['spread']:.3f} | {p} | "
                     f"{'**passes**' if g['passes'] else '**fails**'} |")
    lines += ["", "Gate: the mean absolute difference is at most float32's seed-to-seed std and "
              f"the Wilcoxon test over same-seed pairs finds no shift (p ≥ {ALPHA}). `--precision=auto` "
              "chooses bfloat16 only for models that pass (models/precision.py).", ""]
    return "\n".join(lines)
