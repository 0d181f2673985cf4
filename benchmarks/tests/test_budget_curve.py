"""The budget curve reads every budget k from one longer run: prove it equals a real k-epoch run."""

import json

import pytest
from benchmarks.tests.conftest import DATA_DIR


def _run(tmp_path, name, epochs, test_curve):
    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.rundir import RunDir

    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps({"profile": "paper", "epochs": epochs, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    out = RunDir(tmp_path / name)
    results = training.fit("ganomaly", "mnist", 1, str(out), config=str(config),
                           data_dir=DATA_DIR, limit=300, verbose=0, record_test_curve=test_curve)
    return results, out


def test_a_shorter_run_reports_exactly_the_longer_runs_prefix_result(tmp_path):
    from benchmarks.budget_curve import prefix_result

    long, out = _run(tmp_path, "long", 3, True)
    curve = {r["epoch"]: (r["auprc"], r["auroc"]) for r in out.read_json(out.test_curve_json)}
    for k in (2,):  # one shorter run: each costs ~20 s
        short, _ = _run(tmp_path, f"k{k}", k, False)
        predicted = prefix_result(long["history"], curve, k)
        assert predicted["epoch"] == short["selected_epoch"]
        assert predicted["auprc"] == pytest.approx(short["test"]["auprc"], abs=1e-9)
        assert predicted["auroc"] == pytest.approx(short["test"]["auroc"], abs=1e-9)
        # the same epochs, trained alike: the validation history is the longer run's prefix
        assert [h["val_auprc"] for h in short["history"]] == \
            [h["val_auprc"] for h in long["history"][:k]]
    assert prefix_result(long["history"], curve, 3)["auprc"] == \
        pytest.approx(long["test"]["auprc"], abs=1e-9)


def _history(val, seconds=60):
    return [{"epoch": e, "val_auprc": v, "seconds": seconds} for e, v in enumerate(val, 1)]


def test_selection_reads_validation_only_and_keeps_the_first_of_ties():
    from benchmarks.budget_curve import prefix_result

    curve = {1: (0.9, 0.9), 2: (0.1, 0.2), 3: (0.5, 0.6)}  # test favours epoch 1
    history = _history([0.2, 0.7, 0.7])
    assert prefix_result(history, curve, 1) == {"epoch": 1, "auprc": 0.9, "auroc": 0.9,
                                                "minutes": 1.0}
    assert prefix_result(history, curve, 3)["epoch"] == 2  # a tie keeps the earlier epoch
    with pytest.raises(ValueError, match="2 of the 4 epochs"):
        prefix_result(history[:2], curve, 4)


def test_minutes_are_k_median_epochs_so_a_stopped_epoch_does_not_count():
    from benchmarks.budget_curve import prefix_result

    history = _history([0.1, 0.2, 0.3, 0.4])
    history[1]["seconds"] = 900  # a 14-minute stop inside epoch 2
    curve = {e: (0.5, 0.5) for e in range(1, 5)}
    assert [prefix_result(history, curve, k)["minutes"] for k in (1, 2, 4)] == [1.0, 2.0, 4.0]


def test_equal_wall_clock_cuts_the_longer_cell_to_the_shorter_ones_minutes():
    from benchmarks import budget_curve

    def cell(auprcs, minutes_per_epoch):
        return [{"epoch": e, "auprc": a, "auroc": a, "minutes": e * minutes_per_epoch}
                for e, a in enumerate(auprcs, 1)]
    curves = {}
    for k in range(6):  # EGBAD: 6 epochs of 10 min, better late; GANomaly: 2 epochs of 20 min
        curves[("pooled", "mnist", "egbad", k, 0)] = cell([0.1, 0.2, 0.3, 0.4, 0.8, 0.9], 10)
        curves[("pooled", "mnist", "ganomaly", k, 0)] = cell([0.5, 0.5 + k / 100], 20)
    cpu = [{"protocol": "pooled", "dataset": "mnist", "model": m, "anomalous_class": k,
            "train_seed": 0, "test": {"auprc": a}} for k in range(6)
           for m, a in (("egbad", 0.2), ("ganomaly", 0.3 + k / 100))]
    tests = budget_curve.comparisons(curves, cpu)[("pooled", "mnist")]
    full, clock, small = tests["full budget"], tests["equal wall clock"], tests["`cpu` budget"]
    assert (full["n"], full["a_wins"]) == (6, 6)  # 0.9 against at most 0.55
    # at GANomaly's 40 minutes EGBAD has trained 4 epochs: 0.4 against at least 0.5
    assert clock["b_wins"] == 6 and clock["diffs"][0] == pytest.approx(0.4 - 0.5)
    assert small["b_wins"] == 6 and small["diffs"][5] == pytest.approx(0.2 - 0.35)
    assert full["p"] == pytest.approx(0.03125) and budget_curve.claims.testable(full)


def test_mean_curves_compare_only_classes_both_models_ran():
    from benchmarks import budget_curve

    point = lambda a: [{"epoch": 1, "auprc": a, "auroc": a, "minutes": 1.0}]  # noqa: E731
    curves = {("pooled", "mnist", "ganomaly", 0, 0): point(0.2),
              ("pooled", "mnist", "egbad", 0, 0): point(0.4),
              ("pooled", "mnist", "ganomaly", 7, 0): point(0.9)}  # EGBAD's class 7 not yet run
    kept = budget_curve.paired(curves)
    assert sorted(k[2:4] for k in kept) == [("egbad", 0), ("ganomaly", 0)]
    assert budget_curve.mean_curve(kept, "pooled", "mnist", "ganomaly") == [(1, 0.2, 1.0, 1)]
