"""Every number the README (and the docs pages it sends a reader to) quotes about the benchmark is
read back here from what benchmarks.md prints, or from the committed cells benchmarks.md is
generated from: a regenerated table with a moved number fails here until the prose follows."""

import glob
import json
import os
import re

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
MNIST_CPU = "## mnist, pooled protocol, `cpu` profile"
MODELS = ("anogan", "autoencoder", "egbad", "fanogan", "ganomaly")


def _one_line(path):
    with open(os.path.join(REPO, path)) as f:
        return " ".join(f.read().split())  # sentences wrap anywhere


@pytest.fixture(scope="module")
def readme():
    return _one_line("README.md")


@pytest.fixture(scope="module")
def table():
    with open(os.path.join(REPO, "benchmarks.md")) as f:
        return f.read()


def _section(text, heading):
    """From `heading` to the next heading of its level ('## ' or '### ')."""
    start = text.index(heading + "\n")
    end = text.find("\n" + heading.split(" ")[0] + " ", start + len(heading))
    return text[start:end if end >= 0 else len(text)]


def _rows(section, after):
    """The markdown table that follows the line `after`, as one {header: cell} dict per row."""
    lines = section[section.index(after):].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header = [c.strip() for c in lines[first].strip("|").split("|")]
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def _by(rows, column):
    return {row[column]: row for row in rows}


def _mean_std_n(cell):
    """'0.605 ± 0.078 (n=4)' -> ('0.605', '0.078', '4')."""
    match = re.fullmatch(r"([\d.]+) ± ([\d.]+) \(n=(\d+)\)", cell)
    assert match, cell
    return match.groups()


def _cell(model_profile, k, seed):
    with open(os.path.join(RESULTS, "pooled", "mnist", model_profile, f"class{k}_seed{seed}.json")) as f:
        return json.load(f)


def _seeds(model_profile, k):
    paths = glob.glob(os.path.join(RESULTS, "pooled", "mnist", model_profile, f"class{k}_seed*.json"))
    return sorted(int(re.search(r"seed(\d+)\.json$", p).group(1)) for p in paths)


def test_the_main_commands_expectation_is_benchmarks_md_class_4_row(readme, table):
    mnist = _section(table, MNIST_CPU)
    auprc, std, n = _mean_std_n(_by(_rows(mnist, "Test AUPRC:"), "class")["4"]["ganomaly"])
    auroc, auroc_std, auroc_n = _mean_std_n(_by(_rows(mnist, "Test AUROC:"), "class")["4"]["ganomaly"])
    assert n == auroc_n
    share = _cell("ganomaly_cpu", 4, 0)["splits"]["test_anomaly_share"]
    assert (f"What to expect (benchmarks.md, mnist, pooled, `cpu`, class 4): test AUPRC {auprc} ± {std}, "
            f"AUROC {auroc} ± {auroc_std} over {n} seeds; the test split is {100 * share:.1f} % fours, so a "
            f"random scorer's AUPRC is {share:.3f}.") in readme
    reproducibility = _one_line("docs/reproducibility.md")
    assert f"has test AUPRC {_cell('ganomaly_cpu', 4, 0)['test']['auprc']:.4f};" in reproducibility
    assert f"({auprc} ± {std} over {n} seeds)" in reproducibility
    mean = _by(_rows(mnist, "Test AUPRC:"), "class")["**mean**"]["ganomaly"]
    assert f"GANomaly's mean over the ten MNIST classes (AUPRC {mean})" in readme


def test_the_main_commands_time_is_benchmarks_md_wall_time(readme, table):
    walls = _by(_rows(_section(table, MNIST_CPU), "| model | budget |"), "model")["ganomaly"]
    minutes = {vector_set: m for m, vector_set in re.findall(r"([\d.]+) min on x86_64 2 cpus, (AVX-512|AVX2) \(",
                                                              " ".join(walls.values()))}
    assert (f"mean wall time per cell is {minutes['AVX-512']} min on 2 AVX-512 cores and {minutes['AVX2']} min "
            f"on AVX2") in readme


def test_class_1_is_below_chance_for_every_single_model(readme, table):
    mnist = _section(table, MNIST_CPU)
    auprc, auroc = (_by(_rows(mnist, f"Test {metric}:"), "class")["1"] for metric in ("AUPRC", "AUROC"))
    share = _cell("ganomaly_cpu", 1, 0)["splits"]["test_anomaly_share"]
    assert all(float(_mean_std_n(auprc[m])[0]) < share for m in MODELS)
    assert (f"every single model is below chance (GANomaly AUPRC {_mean_std_n(auprc['ganomaly'])[0]} against a "
            f"{share:.3f} baseline, AUROC {_mean_std_n(auroc['ganomaly'])[0]})") in readme


def test_the_f1_threshold_flag_counts_are_the_class_1_cells():
    seeds = _seeds("ganomaly_cpu", 1)
    rows = [_cell("ganomaly_cpu", 1, s) for s in seeds]
    flagged = [round(r["test"]["recall"] * r["splits"]["test_anomalies"] / r["test"]["precision"]) for r in rows]
    listed = ", ".join(f"{n:,}" for n in flagged[:-1]) + f" and {flagged[-1]:,}"
    assert (f"class-1 GANomaly benchmark runs of seeds {seeds[0]}–{seeds[-1]} flag {listed} of "
            f"{rows[0]['splits']['test']:,} test digits, where {rows[0]['splits']['test_anomalies']:,} are ones"
            ) in _one_line("docs/protocols.md")


def test_fanogans_readme_quotes_the_ganomaly_class_4_cells_of_seeds_0_to_2():
    values = [_cell("ganomaly_cpu", 4, s)["test"]["auprc"] for s in (0, 1, 2)]
    quoted = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
    assert f"GANomaly's cpu cells, seeds 0–2: {quoted})" in _one_line("anomaly_toolbox/models/README_fanogan.md")


def test_the_precision_gate_numbers_are_benchmarks_md_verdicts(table):
    section = _section(table, "## Precision study: bfloat16 against float32")
    gate = _by(_rows(section, "| protocol | model | profile | cells"), "model")
    g, e = gate["ganomaly"], gate["egbad"]
    doc = _one_line("docs/precision.md")
    pairs = re.search(r"\((\d+)\)", g["cells (seed pairs)"]).group(1)
    assert g["gate"] == "**passes**" and e["gate"] == "**fails**"
    assert (f"passes for GANomaly: mean |bf16 − f32| {g['mean abs. difference']} against a float32 seed-to-seed "
            f"std of {g['float32 seed std (mean over cells)']}, and no shift over the {pairs} same-seed pairs "
            f"(Wilcoxon p {g['Wilcoxon p']})") in doc
    assert (f"It fails for EGBAD: {e['mean abs. difference']} against {e['float32 seed std (mean over cells)']} "
            f"(p {e['Wilcoxon p']})") in doc


def test_the_bfloat16_speedups_are_benchmarks_md_ranges(table):
    rows = _rows(_section(table, "## Speed report"), "| model | profile | train img/s f32 → bf16")
    factor = lambda cell: float(re.search(r"\*\*([\d.]+)\*\*", cell).group(1))  # noqa: E731

    def span(profile, column):
        values = [factor(r[column]) for r in rows if r["profile"] == profile]
        return f"{min(values):.2f}–{max(values):.2f}×"

    train, score = "train img/s f32 → bf16 (×)", "SavedModel score img/s f32 → bf16 (×)"
    sentence = (f"bfloat16 trains {span('paper', train)} and scores (SavedModel) {span('paper', score)} faster than "
                f"float32")
    for doc in ("docs/precision.md", "benchmarks/README.md"):
        text = _one_line(doc)
        assert sentence in text and f"gain less ({span('cpu', train)})" in text, doc


def test_the_ensemble_page_quotes_the_kept_scores_median_scales():
    def median(model_profile):
        scores = []
        for path in glob.glob(os.path.join(RESULTS, "pooled", "mnist", model_profile, "*.scores.npz")):
            kept = np.load(path)
            scores.append(kept["val_scores"][kept["val_labels"] == 0])
        assert scores, model_profile
        return np.median(np.concatenate(scores))

    assert (f"the median validation score of a normal digit is {median('ganomaly_cpu'):.2f} for GANomaly, a latent "
            f"distance, and {median('egbad_cpu'):.2f} for EGBAD") in _one_line("docs/ensembles.md")


def test_the_headline_quotes_are_benchmarks_md_sentences(readme):
    """The survey's question, per budget: every quoted sentence is one benchmarks.md prints."""
    start = readme.index("**The survey's question")
    block = readme[start:readme.index("## ", start)]
    quotes = re.findall(r'"([^"]+)"', block)
    printed = _one_line("benchmarks.md")
    assert len(quotes) == 3 and all(f"- {q}" in printed for q in quotes), quotes


def test_the_budgets_the_readme_names_are_the_profiles(readme):
    def profile(name):
        with open(os.path.join(REPO, "experiments", f"{name}.json")) as f:
            return json.load(f)

    mnist, folder = profile("ganomaly_mnist_cpu"), profile("ganomaly_folder_cpu")
    assert f"the `cpu` budget: {mnist['epochs']} epochs;" in readme
    assert (f"The `folder` `cpu` profile is {folder['image_size']}×{folder['image_size']}, {folder['epochs']} "
            f"epochs;") in readme


def test_the_peer_numbers_are_benchmarks_md_tables(readme, table):
    """Speed ratios from the peer table, quality means from the quality section."""
    speed = _by([{**r, "key": f"{r['precision']} {r['what']}"} for r in
                 _rows(_section(table, "## Speed beside the peer: anomalib's GANomaly and ours"),
                       "| precision |")], "key")
    ratio = {k: r["ours / anomalib (median)"].rstrip("x") for k, r in speed.items()}
    assert (f"our train step runs {ratio['float32 train']}× its img/s in float32 and "
            f"{ratio['mixed_bfloat16 train']}× in bfloat16, and scoring through the SavedModel "
            f"{ratio['float32 inference']}× and {ratio['mixed_bfloat16 inference']}×") in readme
    quality = _section(table, "## Quality beside the peer: anomalib's GANomaly and ours")
    assert _peer_quality_claim(quality, "mnist", "MNIST classes") in readme
    if "### fashion_mnist, pooled, `cpu`" in quality:
        assert _peer_quality_claim(quality, "fashion_mnist", "Fashion-MNIST classes") in readme


def _peer_quality_claim(quality, dataset, classes_name):
    """The README's sentence for one dataset's subsection of the quality section."""
    sub = _section(quality, f"### {dataset}, pooled, `cpu`")
    match = re.search(r"Test AUPRC over (\d+) classes \(\d+ class-seed pairs\): anomalib "
                      r"([\d.]+), ours ([\d.]+), mean Δ [+-][\d.]+; ours higher in (\d+) classes",
                      sub)
    classes, peer, ours, wins = match.groups()
    seeds = sorted({s for r in _rows(sub, "| class |") for s in r["seeds"].split(",")})
    verdict = re.search(r"- Test AUPRC over .*; Wilcoxon: (.*)\.\n", sub).group(1)
    return (f"ours has the higher test AUPRC on {wins} of the {classes} {classes_name} (seed "
            f"means {ours} against {peer}; seeds {', '.join(seeds)}); over classes, {verdict}")
