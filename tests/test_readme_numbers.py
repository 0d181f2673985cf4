"""The README's benchmark numbers are recomputed from the committed cells in results/ of the
seeds it names, so a changed or re-run cell fails here until the README follows, instead of
leaving a stale number beside a regenerated benchmarks.md; a later seed (3) leaves them be."""

import json
import os
import re

import numpy as np
import pytest

from anomaly_toolbox.bench import benchmark

MNIST_CPU = os.path.join(benchmark.REPO, "results", "pooled", "mnist")
MODELS = ("ganomaly", "egbad", "anogan", "autoencoder")
SEEDS = (0, 1, 2)  # "seeds 0–2" in the README


@pytest.fixture(scope="module")
def readme():
    return _one_line("README.md")


def _one_line(path):
    with open(os.path.join(benchmark.REPO, path)) as f:
        return " ".join(f.read().split())  # sentences wrap anywhere


def _cells(model, k):
    rows = []
    for seed in SEEDS:
        path = os.path.join(MNIST_CPU, f"{model}_cpu", f"class{k}_seed{seed}.json")
        if os.path.exists(path):
            with open(path) as f:
                rows.append(json.load(f))
    assert rows, (model, k)
    return rows


def _mean_std(rows, metric):
    values = [r["test"][metric] for r in rows]
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def test_the_main_commands_expectation_is_the_class_4_cells(readme):
    rows = _cells("ganomaly", 4)
    assert len(rows) == len(SEEDS)
    share = rows[0]["splits"]["test_anomaly_share"]
    assert (f"What to expect (benchmarks.md, seeds 0–{SEEDS[-1]}): test AUPRC {_mean_std(rows, 'auprc')}, "
            f"AUROC {_mean_std(rows, 'auroc')}; the test split is {100 * share:.1f} % fours, so a random "
            f"scorer's AUPRC is {share:.3f}.") in readme
    fanogan = _one_line("anomaly_toolbox/models/README_fanogan.md")
    assert f"GANomaly's cpu cells, seeds 0–{SEEDS[-1]}: {_mean_std(rows, 'auprc')})" in fanogan
    per_class = [np.mean([r["test"]["auprc"] for r in _cells("ganomaly", k)]) for k in range(10)]
    assert f"GANomaly's mean over the ten MNIST classes (AUPRC {np.mean(per_class):.3f})" in readme


def test_class_1_is_below_chance_for_every_single_model(readme):
    rows = _cells("ganomaly", 1)
    share = rows[0]["splits"]["test_anomaly_share"]
    mean = lambda rs, m: np.mean([r["test"][m] for r in rs])  # noqa: E731
    assert all(mean(_cells(m, 1), "auprc") < share for m in MODELS)
    assert (f"every single model is below chance (GANomaly AUPRC {mean(rows, 'auprc'):.3f} against a "
            f"{share:.3f} baseline, AUROC {mean(rows, 'auroc'):.3f})") in readme


def test_the_f1_threshold_flag_counts_are_the_class_1_cells(readme):
    rows = _cells("ganomaly", 1)
    flagged = [round(r["test"]["recall"] * r["splits"]["test_anomalies"] / r["test"]["precision"])
               for r in rows]
    listed = ", ".join(f"{n:,}" for n in flagged[:-1]) + f" and {flagged[-1]:,}"
    match = re.search(rf"class-1 GANomaly benchmark runs of seeds 0–{SEEDS[-1]} flag ([\d,]+(?:, [\d,]+)* and [\d,]+) "
                      r"of ([\d,]+) test digits", readme)
    assert match and match.group(1) == listed and match.group(2) == f"{rows[0]['splits']['test']:,}"


def test_the_precision_gate_numbers_are_the_committed_verdicts(readme):
    from anomaly_toolbox.bench import precision_study, report

    rows = report.load_results(os.path.join(benchmark.REPO, "results"))
    v = precision_study.verdicts(rows)
    g, e = v[("pooled", "ganomaly", "cpu")], v[("pooled", "egbad", "cpu")]
    assert (f"passes for GANomaly: mean |bf16 − f32| {g['mean_abs_diff']:.3f} against a float32 "
            f"seed-to-seed std of {g['spread']:.3f}, and no shift over the {g['pairs']} same-seed pairs "
            f"(Wilcoxon p {g['p']:.2f})") in readme and g["passes"]
    assert (f"It fails for EGBAD: {e['mean_abs_diff']:.3f} against {e['spread']:.3f} (p {e['p']:.2f})"
            in readme and not e["passes"])


def test_the_headline_quotes_are_benchmarks_md_sentences(readme):
    """The survey's question, per budget: every quoted sentence is one benchmarks.md prints."""
    start = readme.index("**The survey's question")
    block = readme[start:readme.index("`--profile=NAME`", start)]
    quotes = re.findall(r'"([^"]+)"', block)
    table = _one_line("benchmarks.md")
    assert len(quotes) == 3 and all(f"- {q}" in table for q in quotes), quotes
