"""Ensemble cells derived from trained cells, with no retraining: the survey's "future work".

From the committed per-cell scores (`<cell>.scores.npz`), for every protocol, dataset, profile
and class:
  gan3_ensemble          GANomaly + EGBAD + AnoGAN of one seed,
  gan3+ae_ensemble       the same plus the autoencoder,
  <model>_seeds_ensemble every seed of one model (one cell per class: its seeds are its members),
  egbad+ganomaly_ensemble GANomaly at `paper` + EGBAD at `paper_clock` (the papers' budget),
each combined as `anomaly_toolbox.ensemble` combines runs (robust standardisation on validation
normals, mean). Their results files are derived data: rewritten whole on every call.
"""

import glob
import json
import os
import re
import shutil
from collections import defaultdict

import numpy as np

from anomaly_toolbox import metrics
from benchmarks.cells import CLASSES, finished_cell, groups
from anomaly_toolbox.files import write_json
from anomaly_toolbox.run.ensemble import combine, robust_scale

GAN3 = ("ganomaly", "egbad", "anogan")
MODEL_SETS = {"gan3_ensemble": GAN3, "gan3+ae_ensemble": GAN3 + ("autoencoder",)}
SEEDS_SUFFIX = "_seeds_ensemble"
CELL = re.compile(r"[^/]+/[^/]+/[^/]+/class\d+_seed\d+\.scores\.npz$")  # from the results
# folder's top: peer_quality/<protocol>/<dataset>/... holds the peer's cells, not ours


def is_ensemble(model_name):
    return model_name.endswith("_ensemble")


def scored_cells(results_dir):
    """{(protocol, dataset, profile, class): {(model, seed): path without .scores.npz}}."""
    cells = defaultdict(dict)
    for path in glob.glob(os.path.join(results_dir, "**", "*.scores.npz"), recursive=True):
        if not CELL.match(os.path.relpath(path, results_dir).replace(os.sep, "/")):
            continue
        finished = finished_cell(path, ".scores.npz")
        if not finished:
            continue
        cell, r = finished
        if not is_ensemble(r["model"]):
            key = (r["protocol"], r["dataset"], r["config"].get("profile"), r["anomalous_class"])
            cells[key][(r["model"], r["train_seed"])] = cell
    return cells


def ensemble_result(member_paths, model_name, train_seed):
    """A results dict like a cell's, for the mean of the members' standardised scores."""
    members = [(json.load(open(p + ".json")), np.load(p + ".scores.npz")) for p in member_paths]
    first, scores = members[0]
    y_val, y_test = scores["val_labels"], scores["test_labels"]
    for _, s in members[1:]:
        assert np.array_equal(s["val_labels"], y_val) and np.array_equal(s["test_labels"], y_test)
    scales = [robust_scale(s["val_scores"], y_val) for _, s in members]
    weights = [1.0] * len(members)
    val = combine([s["val_scores"] for _, s in members], *zip(*scales), weights)
    test = combine([s["test_scores"] for _, s in members], *zip(*scales), weights)
    threshold = metrics.validation_threshold(val, y_val)
    return {
        "model": model_name, "train_seed": train_seed,
        **{k: first[k] for k in ("dataset", "anomalous_class", "protocol", "split_seed", "limit",
                                 "splits", "versions")},
        "config": {**{k: first["config"][k] for k in ("profile", "epochs", "batch_size")},
                   "model": {"members": [f"{r['model']} seed {r['train_seed']}"
                                         for r, _ in members]}},
        "validation": metrics.evaluate(val, y_val, threshold),
        "test": metrics.evaluate(test, y_test, threshold),
        "wall_time_s": {k: round(sum(r["wall_time_s"][k] for r, _ in members), 1)
                        for k in ("train", "evaluate")}}


def _write(path, result):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, result)


def sentences(rows):
    """For "What the numbers say": the 3-GAN ensemble against the best single model of each
    table, on the same cells (classes and seeds where the ensemble exists)."""
    sentences, classes = [], CLASSES
    for (protocol, dataset, profile), group in sorted(groups(rows).items()):
        auprc = {(r["model"], r["anomalous_class"], r["train_seed"]): r["test"]["auprc"]
                 for r in group}
        cells = [(k, s) for (m, k, s) in auprc if m == "gan3_ensemble" and k in classes]
        singles = sorted({m for m, _, _ in auprc if m in GAN3 + ("autoencoder",)})
        if not cells or not singles:
            continue
        ks = sorted({k for k, _ in cells})

        def class_mean(model_name, k):
            return np.mean([auprc[(model_name, k, s)] for kk, s in cells if kk == k])

        ens = {k: class_mean("gan3_ensemble", k) for k in ks}
        single = {m: {k: class_mean(m, k) for k in ks} for m in singles}
        best = max(singles, key=lambda m: np.mean(list(single[m].values())))
        wins = sum(ens[k] > max(single[m][k] for m in singles) for k in ks)
        ens_mean, best_mean = np.mean(list(ens.values())), np.mean(list(single[best].values()))
        sentences.append(
            f"On {dataset} ({protocol}, `{profile}`; {len(ks)} class{'es' * (len(ks) != 1)}, "
            f"{len(cells)} cell{'s' * (len(cells) != 1)} with a "
            f"3-GAN ensemble), the ensemble's mean test AUPRC is {ens_mean:.3f} against "
            f"{best_mean:.3f} for the best single model ({best}) on the same cells, so the "
            f"ensemble goal (a mean above the best single model's) is "
            f"{'met' if ens_mean > best_mean else 'not met'} there; per class, it is above every "
            f"single model on {wins} of {len(ks)}.")
    return sentences


PAPERS_BUDGET = (("ganomaly", "paper"), ("egbad", "paper_clock"))  # each model's own budget
PAPERS_BUDGET_ENSEMBLE = "egbad+ganomaly_ensemble"


def _papers_budget(results_dir, protocol, dataset, k, have_paper):
    """GANomaly at `paper` + EGBAD at `paper_clock`: the two members ran at different profiles,
    so the cell is filed under the first member's (`paper`); its members name their profiles."""
    clock = scored_cells(results_dir).get((protocol, dataset, PAPERS_BUDGET[1][1], k), {})
    written = 0
    for seed in sorted(s for m, s in have_paper if m == PAPERS_BUDGET[0][0]):
        if (PAPERS_BUDGET[1][0], seed) in clock:
            result = ensemble_result([have_paper[(PAPERS_BUDGET[0][0], seed)],
                                      clock[(PAPERS_BUDGET[1][0], seed)]],
                                     PAPERS_BUDGET_ENSEMBLE, seed)
            result["config"]["model"]["members"] = [f"{m} seed {seed} (`{p}`)"
                                                    for m, p in PAPERS_BUDGET]
            _write(os.path.join(results_dir, protocol, dataset,
                                f"{PAPERS_BUDGET_ENSEMBLE}_{PAPERS_BUDGET[0][1]}",
                                f"class{k}_seed{seed}.json"), result)
            written += 1
    return written


def write_all(results_dir):
    """Rewrites every ensemble cell from the scores present; returns how many it wrote."""
    for folder in glob.glob(os.path.join(results_dir, "*", "*", "*_ensemble_*")):
        shutil.rmtree(folder)
    written = 0
    for (protocol, dataset, profile, k), have in sorted(scored_cells(results_dir).items()):
        out = os.path.join(results_dir, protocol, dataset)
        seeds = sorted({s for _, s in have})
        for name, model_set in MODEL_SETS.items():
            for seed in seeds:
                if all((m, seed) in have for m in model_set):
                    result = ensemble_result([have[(m, seed)] for m in model_set], name, seed)
                    _write(os.path.join(out, f"{name}_{profile}", f"class{k}_seed{seed}.json"),
                           result)
                    written += 1
        if profile == PAPERS_BUDGET[0][1]:
            written += _papers_budget(results_dir, protocol, dataset, k, have)
        for model_name in sorted({m for m, _ in have}):
            own = sorted(s for m, s in have if m == model_name)
            if len(own) > 1:
                result = ensemble_result([have[(model_name, s)] for s in own],
                                         model_name + SEEDS_SUFFIX, "+".join(map(str, own)))
                _write(os.path.join(out, f"{model_name}{SEEDS_SUFFIX}_{profile}",
                                    f"class{k}_seeds{'-'.join(map(str, own))}.json"), result)
                written += 1
    return written
