"""The budget study's analysis file: each epoch's test metrics, kept apart from selection."""

import json

import numpy as np
import pytest
from benchmarks.tests.conftest import DATA_DIR


def test_test_curve_is_recorded_for_analysis_and_selection_ignores_it(tmp_path):
    from benchmarks import benchmark, budget, cells as results_cells
    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.rundir import RunDir

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"profile": "paper", "epochs": 3, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    out = RunDir(tmp_path / "run")
    results = training.fit("ganomaly", "mnist", 1, str(out), config=str(config),
                           data_dir=DATA_DIR, limit=300, verbose=0, record_test_curve=True)
    curve = out.read_json(out.test_curve_json)
    assert [r["epoch"] for r in curve] == [1, 2, 3]
    # the selected epoch is the best VALIDATION epoch, whatever the test curve says
    best_val = max(results["history"], key=lambda h: h["val_auprc"])["epoch"]
    assert results["selected_epoch"] == best_val
    selected = next(r for r in curve if r["epoch"] == results["selected_epoch"])
    assert selected["auprc"] == pytest.approx(results["test"]["auprc"], abs=1e-6)

    cells = tmp_path / "results"
    target = cells / "pooled" / "mnist" / "ganomaly_paper" / "class1_seed0"
    benchmark.keep_cell(out, str(target))
    assert (target.parent / "class1_seed0.test_curve.csv").read_text().count("\n") == 4
    cpu = {**results, "config": {**results["config"], "profile": "cpu"},
           "test": {**results["test"], "auprc": 0.25}}
    text = budget.section(results_cells.load(str(cells)) + [cpu])
    best = max(r["auprc"] for r in curve)
    assert "for comparison only" in text
    assert (f"| pooled | mnist | 1 | 0 | ganomaly | `paper` | 3 (selected "
            f"{results['selected_epoch']}) | "
            f"{(results['wall_time_s']['train'] + results['wall_time_s']['evaluate']) / 60:.0f} | "
            f"0.250 | {results['test']['auprc']:.3f} | "
            f"{best:.3f}") in text
    same = int(best - results["test"]["auprc"] < 1e-5)
    assert (f"the validation-selected epoch was also the best test epoch on {same} of 1.") in text
    # why the two pick alike or not: each epoch's validation AUPRC against its test AUPRC
    val = [h["val_auprc"] for h in results["history"]]
    test = [r["auprc"] for r in curve]
    assert (f"Pearson r ≥ {np.corrcoef(val, test)[0, 1]:.3f} in each of these 1 cells, largest "
            f"gap {np.abs(np.subtract(val, test)).max():.3f}, on {results['splits']['val']}–"
            f"{results['splits']['val']} validation images per cell.") in text
    # the `cpu` cell is not a budget cell: only the listed cell's hardware is counted
    assert f"Hardware of these cells: {results['versions']['machine']}: 1 cell." in text


def test_generated_sentences_pair_each_budget_cell_with_its_cpu_cell():
    from benchmarks import budget

    def row(model, profile, k, auprc, epochs):
        return {"model": model, "anomalous_class": k, "train_seed": 0, "test": {"auprc": auprc},
                "config": {"profile": profile, "epochs": epochs}, "protocol": "pooled",
                "dataset": "mnist"}
    groups = {("pooled", "mnist", "paper"): [row("ganomaly", "paper", 1, 0.5, 15),
                                              row("ganomaly", "paper", 5, 0.9, 15)],
              ("pooled", "mnist", "paper_clock"): [row("egbad", "paper_clock", 1, 0.7, 42)],
              ("pooled", "mnist", "cpu"): [row("ganomaly", "cpu", 1, 0.4, 2),
                                            row("ganomaly", "cpu", 5, 0.95, 2),
                                            row("egbad", "cpu", 1, 0.3, 2),
                                            row("egbad", "cpu", 3, 0.3, 2)]}
    said = budget.sentences([r for group in groups.values() for r in group])
    assert said[0] == ("At the papers' budget (`paper_clock`, 42 epochs), egbad's mean test AUPRC "
                       "over its 1 budget-study cell is 0.700 against 0.300 for the same cells at "
                       "`cpu`, higher on 1 of 1.")
    assert said[1].startswith("At the papers' budget (`paper`, 15 epochs), ganomaly's mean test "
                              "AUPRC over its 2 budget-study cells is 0.700 against 0.675")
    assert said[1].endswith("higher on 1 of 2.")
    # class 1 only: EGBAD - GANomaly = 0.7 - 0.5 at the papers' budget, 0.3 - 0.4 at cpu
    assert said[2] == ("On the 1 cell both models ran at both budgets, EGBAD − GANomaly test "
                       "AUPRC is +0.200 at the papers' budget against -0.100 at `cpu` (EGBAD "
                       "ahead on 1 and 0 of them); too few cells for a test.")
    assert budget.sentences(groups[("pooled", "mnist", "cpu")]) == []
