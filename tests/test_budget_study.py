"""The budget study's analysis file: each epoch's test metrics, kept apart from selection."""

import json

import pytest
from conftest import DATA_DIR


def test_test_curve_is_recorded_for_analysis_and_selection_ignores_it(tmp_path):
    from anomaly_toolbox.bench import benchmark, budget
    from anomaly_toolbox.run import training
    from anomaly_toolbox.run.rundir import RunDir

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"profile": "paper", "epochs": 3, "batch_size": 32,
                                  "model": {"latent_dim": 8, "filters": [4, 8, 16]}}))
    out = RunDir(tmp_path / "run")
    results = training.run("ganomaly", "mnist", 1, str(out), config=str(config),
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
    text = "\n".join(budget.section([results, cpu], str(cells)))
    best = max(r["auprc"] for r in curve)
    assert "for comparison only" in text
    assert (f"| pooled | mnist | 1 | 0 | ganomaly | `paper` | 3 (selected "
            f"{results['selected_epoch']}) | "
            f"{(results['wall_time_s']['train'] + results['wall_time_s']['evaluate']) / 60:.0f} | "
            f"0.250 | {results['test']['auprc']:.3f} | "
            f"{best:.3f}") in text
