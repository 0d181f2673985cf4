"""The survey's claim (EGBAD outperforms GANomaly) as a paired test, and the "What the numbers
say" paragraph, both computed from the results files so that no sentence is written by hand.

Pairs are classes: each class's test AUPRC is first averaged over its seeds, then the per-class
differences EGBAD - GANomaly are tested with the two-sided Wilcoxon signed-rank test (exact for
these sizes; scipy, which scikit-learn installs). With 10 classes the smallest possible p is
0.002; p < 0.05 is called significant. Fewer than 6 classes can never reach it (the smallest p
is 2 / 2^n: 0.0625 at n = 5), so those are reported as too few to test, not as "no difference".
"""

import numpy as np

from benchmarks import cells
from benchmarks.cells import CLASSES, by_cell

CHALLENGER, INCUMBENT = "egbad", "ganomaly"
ALPHA = 0.05


def seed_mean(rows, metric="auprc"):
    return float(np.mean([r[metric] for r in rows]))


def paired(by_cell, classes, a=CHALLENGER, b=INCUMBENT, metric="auprc"):
    """Per-class differences a - b on the classes that have both, their wins and the test."""
    from scipy.stats import wilcoxon

    ks = [k for k in classes if (a, k) in by_cell and (b, k) in by_cell]
    diffs = np.array([seed_mean(by_cell[(a, k)], metric) - seed_mean(by_cell[(b, k)], metric)
                      for k in ks])
    result = {"classes": ks, "diffs": diffs, "n": len(ks), "a_wins": int((diffs > 0).sum()),
              "b_wins": int((diffs < 0).sum()), "p": None,
              "seeds": sorted({len(by_cell[(m, k)]) for k in ks for m in (a, b)})}
    if len(ks) >= 2 and np.any(diffs != 0):
        result["p"] = float(wilcoxon(diffs).pvalue)
    return result


def smallest_p(n):
    """The exact two-sided signed-rank test's smallest p over n nonzero differences."""
    return 2 * 0.5 ** n


MIN_CLASSES = next(n for n in range(1, 64) if smallest_p(n) < ALPHA)  # 6 at ALPHA = 0.05


def testable(test):
    return test["p"] is not None and test["n"] >= MIN_CLASSES


def verdict(test, a=CHALLENGER, b=INCUMBENT):
    if not testable(test):
        return "too few classes to test"
    if test["p"] >= ALPHA:
        return f"no significant difference (p = {test['p']:.3f})"
    winner = a if np.mean(test["diffs"]) > 0 else b
    return f"{winner} is better (p = {test['p']:.3f})"


def _seeds_label(seeds):
    return f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"


def claim_lines(by_cell, classes):
    """Under a dataset's tables: the per-class differences and the test."""
    test = paired(by_cell, classes)
    if not test["n"]:
        return []
    diffs = ", ".join(f"{k}: {d:+.3f}" for k, d in zip(test["classes"], test["diffs"]))
    return [f"Survey claim (EGBAD outperforms GANomaly), paired over {test['n']} classes "
            f"(seed means, {_seeds_label(test['seeds'])} seeds): EGBAD − GANomaly test AUPRC "
            f"per class {diffs}; mean {np.mean(test['diffs']):+.3f}; EGBAD higher on "
            f"{test['a_wins']}, GANomaly on {test['b_wins']}; Wilcoxon signed-rank: "
            f"{verdict(test)}.", ""]


def _tests(groups):
    """[(protocol, profile, dataset, paired test)] per protocol x profile x dataset, plus both
    datasets pooled (20 pairs), for the settings that have pairs."""
    by_setting = {}
    for (protocol, dataset, profile), group in sorted(groups.items()):
        by_setting.setdefault((protocol, profile), []).append((dataset, by_cell(group)))
    out = []
    for (protocol, profile), datasets in sorted(by_setting.items()):
        rows = [(d, paired(c, CLASSES)) for d, c in datasets]
        if len(rows) > 1:
            both = {(m, (d, k)): v for d, c in datasets for (m, k), v in c.items()}
            keys = [(d, k) for d, _ in datasets for k in CLASSES]
            rows.append(("both", paired(both, keys)))
        out += [(protocol, profile, dataset, test) for dataset, test in rows if test["n"]]
    return out


def section(rows):
    """The claim's table: one row per protocol x profile x dataset, and both datasets pooled."""
    groups = cells.groups(rows)
    if not groups:
        return ""
    lines = ["## The survey's claim: does EGBAD beat GANomaly?", "",
             "Paired over anomalous classes (each class's seeds averaged first); two-sided "
             f"Wilcoxon signed-rank test on the per-class differences, significant at p < {ALPHA}; "
             f"fewer than {MIN_CLASSES} classes are too few to test (the exact test's smallest p "
             f"is 2 / 2^n, {smallest_p(MIN_CLASSES - 1):.4f} at n = {MIN_CLASSES - 1}).",
             "", "| protocol | profile | dataset | classes | seeds | mean EGBAD − GANomaly AUPRC "
             "| EGBAD wins | GANomaly wins | p | verdict |", "|---" * 10 + "|"]
    for protocol, profile, dataset, test in _tests(groups):
        p = "—" if test["p"] is None else f"{test['p']:.3f}"
        lines.append(f"| {protocol} | `{profile}` | {dataset} | {test['n']} | "
                     f"{_seeds_label(test['seeds'])} | {np.mean(test['diffs']):+.3f} | "
                     f"{test['a_wins']} | {test['b_wins']} | {p} | {verdict(test)} |")
    return "\n".join(lines + [""])


def sentences(rows):
    """For "What the numbers say": the best model per table, then the claim's verdicts."""
    groups = cells.groups(rows)
    sentences = []
    for (protocol, dataset, profile), group in sorted(groups.items()):
        table = by_cell(group)
        means = {}
        for m in sorted({r["model"] for r in group}):
            per_class = [seed_mean(table[(m, k)]) for k in CLASSES if (m, k) in table]
            if len(per_class) == len(CLASSES):
                means[m] = float(np.mean(per_class))
        if len(means) < 2:
            continue
        ranked = sorted(means, key=means.get, reverse=True)
        share = float(np.mean([r["splits"]["test_anomaly_share"] for r in group]))
        sentences.append(
            f"On {dataset} ({protocol}, `{profile}`), {ranked[0]} has the highest mean test AUPRC "
            f"({means[ranked[0]]:.3f}, next {ranked[1]} {means[ranked[1]]:.3f}; a random scorer "
            f"gets {share:.3f}).")
    verdicts = _tests(groups)
    for protocol, profile, dataset, test in verdicts:
        if dataset == "both" or len([v for v in verdicts if v[:2] == (protocol, profile)]) == 1:
            sentences.append(
                f"Over {'both datasets' if dataset == 'both' else dataset} ({protocol}, "
                f"`{profile}`, {test['n']} classes), EGBAD beats GANomaly on {test['a_wins']} "
                f"classes and loses on {test['b_wins']}: {verdict(test)}"
                + (" yet, so nothing is concluded." if not testable(test) else
                   ", so the survey's claim is not supported here." if
                   test["p"] >= ALPHA or np.mean(test["diffs"]) < 0
                   else ", as the survey claims."))
    return sentences
