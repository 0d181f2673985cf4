"""Quality beside the peer, without the peer (torch is not installed here): the split it is handed
is our cell's, its epoch is chosen on validation only, and the section's numbers."""

import json
import os

import numpy as np
import pytest

from benchmarks import (RESULTS, benchmark, cells, ensembles, peer_quality, peer_quality_report,
                        report)
from benchmarks.tests.conftest import DATA_DIR

COMMITTED = os.path.join(RESULTS, "pooled", "mnist", "ganomaly_cpu", "class3_seed2")


def test_the_peer_gets_the_split_our_cell_trained_and_was_tested_on():
    """Labels and sizes against what a committed cell of ours kept; images against the
    pipelines our training and scoring feed the model."""
    from anomaly_toolbox.data.preprocessing import eval_dataset, train_dataset

    splits, split_seed = peer_quality.cell_splits("mnist", 3, "pooled", DATA_DIR)
    with open(COMMITTED + ".json") as f:
        ours = json.load(f)
    kept = np.load(COMMITTED + ".scores.npz")
    assert split_seed == ours["split_seed"] and splits.counts() == ours["splits"]
    np.testing.assert_array_equal(splits.y_val, kept["val_labels"])
    np.testing.assert_array_equal(splits.y_test, kept["test_labels"])
    small = splits.limited(300)
    given = peer_quality.peer_inputs(small)
    for name, images in (("x_val", small.x_val), ("x_test", small.x_test)):
        scored = np.concatenate([b.numpy() for b in eval_dataset(images, 128)])
        np.testing.assert_array_equal(given[name], scored.transpose(0, 3, 1, 2))
    trained = np.concatenate([b.numpy() for b in train_dataset(small.x_train, 64, 0, 0)])
    def rows(x):
        return sorted(r.tobytes() for r in x.reshape(len(x), -1))
    assert rows(given["x_train"]) == rows(trained.transpose(0, 3, 1, 2))  # same images, any order
    assert given["x_train"].shape == (300, 1, 32, 32) and given["x_train"].dtype == np.float32


def test_the_epoch_is_chosen_on_validation_even_when_test_would_pick_another():
    rng = np.random.default_rng(0)
    y_val, y_test = np.r_[np.zeros(60), np.ones(30)], np.r_[np.zeros(90), np.ones(45)]
    noise_v, noise_t = rng.normal(size=90), rng.normal(size=135)
    val = np.stack([noise_v + 3 * y_val, noise_v + 0.5 * y_val, noise_v + 3 * y_val])
    test = np.stack([noise_t + 0.2 * y_test, noise_t + 5 * y_test, noise_t + 5 * y_test])
    epoch, per_epoch = peer_quality.select(val, y_val)
    assert epoch == 1  # epoch 3 ties epoch 1 on validation: the first wins, as in training
    assert per_epoch[0]["auprc"] == per_epoch[2]["auprc"] > per_epoch[1]["auprc"]

    class Splits:
        pass
    splits = Splits()
    splits.y_val, splits.y_test = y_val, y_test
    result, kept_val, kept_test = peer_quality.result_of(
        {"val_scores": val, "test_scores": test}, splits, epoch)
    from anomaly_toolbox.metrics import ranking_metrics
    assert result["test"]["auprc"] == ranking_metrics(test[0], y_test)["auprc"]
    assert result["test"]["auprc"] < ranking_metrics(test[1], y_test)["auprc"]  # not the best test
    np.testing.assert_array_equal(kept_test, test[0])


def _row(k, seed, auprc, auroc, model="ganomaly", **extra):
    return {"model": model, "dataset": "mnist", "anomalous_class": k, "protocol": "pooled",
            "train_seed": seed, "limit": None, "split_seed": 0,
            "config": {"profile": "cpu", "epochs": 2, "batch_size": 64,
                       "model": {"filters": [32, 64, 128]}},
            "splits": {"test": 100, "test_anomaly_share": 0.35},
            "test": {"auprc": auprc, "auroc": auroc},
            "wall_time_s": {"train": 540.0, "evaluate": 60.0},
            "versions": {"machine": "x86_64 2 cpus, AVX-512", "tensorflow": "2.21.0"}, **extra}


def _peer(k, seed, auprc, auroc, epoch=1):
    return _row(k, seed, auprc, auroc, model="anomalib_ganomaly", peer="anomalib",
                selected_epoch=epoch, command="python -m benchmarks.peer_quality ...",
                peer_threads=1, wall_time_s={"train": 240.0, "score": 60.0, "total": 320.0},
                versions={"machine": "x86_64 2 cpus, AVX-512", "anomalib": "2.7.0",
                          "torch": "2.14.1"})


def test_section_pairs_class_and_seed_and_tests_the_classes_seed_means(tmp_path):
    from scipy.stats import wilcoxon

    ours = {(k, s): 0.5 + 0.03 * k + 0.01 * s for k in range(8) for s in (0, 1)}
    theirs = {(k, s): 0.5 + 0.02 * k - 0.01 * s for k in range(8) for s in (0, 1)}
    rows = [_row(k, s, a, a + 0.1) for (k, s), a in ours.items()]
    peers = [_peer(k, s, a, a + 0.2, epoch=1 + (k == 0)) for (k, s), a in theirs.items()]
    peers.append(_peer(9, 0, 0.9, 0.9))  # no partner among our cells: not in the table
    bad = _peer(8, 0, 0.1, 0.1)
    bad["splits"] = {"test": 99, "test_anomaly_share": 0.35}  # another split: never a pair
    rows.append(_row(8, 0, 0.5, 0.5))
    text = report.render(rows, str(tmp_path), peers + [bad])
    lines = text.splitlines()
    lines = lines[lines.index("## Quality beside the peer: anomalib's GANomaly and ours"):]
    # class 2: anomalib (0.54 + 0.53) / 2 = 0.535, ours (0.56 + 0.57) / 2 = 0.565
    assert "| 2 | 0,1 | 0.535 | 0.565 | +0.030 | 0.735 | 0.665 | -0.070 |" in lines
    assert not any(line.startswith("| 9 |") or line.startswith("| 8 |") for line in lines)
    # the test's unit is the class (its seeds are repeats, as in the grid's comparisons): 8
    # differences of seed means, not 16 (class, seed) differences
    diffs = [np.mean([ours[k, s] - theirs[k, s] for s in (0, 1)]) for k in range(8)]
    p = wilcoxon(diffs).pvalue
    auprc = next(line for line in lines if line.startswith("- Test AUPRC over 8 classes"))
    assert auprc == (f"- Test AUPRC over 8 classes (16 class-seed pairs): anomalib "
                     f"{np.mean(list(theirs.values())):.3f}, "
                     f"ours {np.mean(list(ours.values())):.3f}, mean Δ {np.mean(diffs):+.3f}; "
                     f"ours higher in {sum(d > 0 for d in diffs)} classes, anomalib's in "
                     f"{sum(d < 0 for d in diffs)}; Wilcoxon: ours is better (p = {p:.3f}).")
    assert p != wilcoxon([ours[c] - theirs[c] for c in sorted(ours)]).pvalue
    assert any(line.startswith("- Test AUROC over 8 classes") and "anomalib is better" in line
               for line in lines)
    assert "- anomalib's selected epoch: 1 in 14, 2 in 2 pairs." in lines
    assert "Not paired, split sizes differ: ('pooled', 'mnist', 'cpu', 8, 0)." in lines
    assert peer_quality_report.section(rows, []) == ""


def test_the_peers_cells_never_enter_our_tables_or_ensembles(tmp_path):
    """Written where peer_quality writes them, with a cell of ours beside: the grid loader, the
    ensembles and the merge check see only ours; the section finds the peer's."""
    from anomaly_toolbox.files import write_json

    y = np.r_[np.zeros(5), np.ones(5)].astype(bool)
    ours = str(tmp_path / "pooled/mnist/ganomaly_cpu/class0_seed0")
    for target, r in ((ours, _row(0, 0, .6, .7)),
                      (peer_quality.cell_path(str(tmp_path / peer_quality_report.FOLDER), "pooled",
                                              "mnist", "cpu", 0, 0), _peer(0, 0, .5, .6))):
        benchmark.keep_scores({"val_scores": np.arange(10.), "val_labels": y,
                               "test_scores": np.arange(10.), "test_labels": y}, target)
        write_json(target + ".json", r)
    assert [r["model"] for r in cells.load(str(tmp_path))] == ["ganomaly"]
    assert list(ensembles.scored_cells(str(tmp_path)).values()) == [
        {("ganomaly", 0): str(tmp_path / "pooled/mnist/ganomaly_cpu/class0_seed0")}]
    cell = ("pooled", "mnist", "ganomaly", "cpu", 0, 0)
    assert benchmark.check_merged(str(tmp_path), [cell]) == ([], [])
    report.write(str(tmp_path), str(tmp_path / "benchmarks.md"))
    assert "| 0 | 0 | 0.500 | 0.600 | +0.100 |" in (tmp_path / "benchmarks.md").read_text()


@pytest.mark.parametrize("flag, message", [
    ("--peer_python=/nonexistent", "invalid peer_python: '/nonexistent'"),
    ("--workers=0", "invalid workers: 0"), ("--protocol=x", "invalid protocol: 'x'")])
def test_a_bad_flag_is_one_error_line(flag, message):
    import subprocess
    import sys

    from benchmarks import child_env

    peer = [] if "peer_python" in flag else [f"--peer_python={sys.executable}"]
    out = subprocess.run([sys.executable, "-m", "benchmarks.peer_quality", *peer, flag],
                         capture_output=True, text=True, env=child_env())
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(
        f"error: {message}")
