"""benchmarks.md rendering from synthetic results: means over seeds, then over classes."""

from benchmarks import report, tables
from anomaly_toolbox.run import provenance


def _row(model, k, seed, auprc, dataset="mnist", machine="x86_64 2 cpus"):
    return {"model": model, "dataset": dataset, "anomalous_class": k, "protocol": "pooled",
            "train_seed": seed, "config": {"profile": "cpu", "epochs": 2, "batch_size": 64,
                                           "model": {"filters": [4, 8, 16]}},
            "splits": {"test_anomaly_share": 0.36},
            "test": {"auprc": auprc, "auroc": auprc + 0.1},
            "wall_time_s": {"train": 60.0, "evaluate": 30.0},
            "versions": {"machine": machine, "tensorflow": "2.21.0"}}


def test_summary_and_tables_average_seeds_then_classes(tmp_path):
    rows = [_row("egbad", 0, 0, 0.2), _row("egbad", 0, 1, 0.4), _row("egbad", 1, 0, 0.9),
            _row("ganomaly", 0, 0, 0.5), _row("ganomaly", 1, 0, 0.5, machine="x86_64 2 cpus, AVX-512"),
            _row("ganomaly", 3, 0, 0.8, dataset="fashion_mnist")]
    rows[4]["wall_time_s"]["train"] = 120.0
    text = report.render(rows, str(tmp_path))
    lines = text.splitlines()
    summary = lines.index("| dataset | protocol | profile | egbad | ganomaly |")
    # egbad: class 0 = mean(0.2, 0.4) = 0.3, class 1 = 0.9 -> 0.6; not 0.5, the mean of rows
    assert lines[summary + 2] == ("| fashion_mnist | pooled | `cpu` | — | "
                                  "0.800 / 0.900 (1 of 10 classes, 1 seed) |")
    assert lines[summary + 3] == ("| mnist | pooled | `cpu` | 0.600 / 0.700 (2 of 10 classes, "
                                  "1–2 seeds per class) | 0.500 / 0.600 (2 of 10 classes, 1 seed) |")
    assert "| **mean** | 0.600 (2 of 10 classes) | 0.500 (2 of 10 classes) |" in lines
    assert "| 0 | 0.300 ± 0.141 (n=2) | 0.500 (n=1) |" in lines
    assert "- Missing trained cells (model x class x seed): 35 of 40." in lines
    assert ("- Test anomaly share: 36.0% – 36.0% (by class); a random scorer's expected AUPRC "
            "equals it (dashed line in the chart).") in lines
    assert ("- Hardware, CPU only (wall times depend on it): x86_64 2 cpus, AVX-512: 1 cell; "
            "x86_64 2 cpus, vector set not recorded: 4 cells.") in lines
    assert ("Survey claim (EGBAD outperforms GANomaly), paired over 2 classes (seed means, 1–2 "
            "seeds): EGBAD − GANomaly test AUPRC per class 0: -0.200, 1: +0.400; mean +0.100; "
            "EGBAD higher on 1, GANomaly on 1; Wilcoxon signed-rank: too few classes to test.") in lines
    assert "--seeds=0,1 --protocol=pooled" in text  # the command reproduces the table's seeds
    assert (tmp_path / "benchmark_pooled_mnist_cpu.png").stat().st_size > 1000
    anogan = _row("anogan", 0, 0, 0.4)
    anogan["config"]["model"].update(search_steps=10, search_init="best_of_k", search_k=8,
                                      lambda_=0.1)
    assert ("| anogan | 2 epochs, batch 64, filters [4, 8, 16], search Γ = 10 steps from best of "
            "8 starts, lambda 0.1 | 1.5 min |") in report.render([anogan], str(tmp_path))
    # ganomaly's two mnist cells ran on two kinds of CPU: its wall time is given per kind
    assert ("| ganomaly | 2 epochs, batch 64, filters [4, 8, 16] | 2.5 min on x86_64 2 cpus, "
            "AVX-512 (1 cell); 1.5 min on x86_64 2 cpus, vector set not recorded (1 cell) |") in lines
    assert "| egbad | 2 epochs, batch 64, filters [4, 8, 16] | 1.5 min |" in lines
    one_epoch = _row("egbad", 0, 0, 0.4)
    one_epoch["config"]["epochs"] = 1
    assert "| egbad | 1 epoch, batch 64," in report.render([one_epoch], str(tmp_path))
    assert report.render([], str(tmp_path)).endswith("No results yet.\n")


def test_machine_label_names_the_vector_isa(tmp_path):
    """Results record AVX2 vs AVX-512: their kernels round and run differently."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    assert provenance.vector_isa(str(cpuinfo)) == "AVX2"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n")
    assert provenance.vector_isa(str(cpuinfo)) == "AVX-512"
    cpuinfo.write_text("Features\t: fp asimd\n")
    assert provenance.vector_isa(str(cpuinfo)) is None
    assert provenance.vector_isa(str(tmp_path / "absent")) is None


def test_claim_is_a_paired_wilcoxon_test_over_class_seed_means(tmp_path):
    """EGBAD below GANomaly on all 10 classes: the exact two-sided signed-rank p is 2/2^10."""
    rows = [_row(m, k, s, v) for k in range(10) for s in (0, 1)
            for m, v in (("egbad", 0.3 + 0.01 * k + 0.01 * s), ("ganomaly", 0.6 + 0.02 * k))]
    text = report.render(rows, str(tmp_path))
    assert ("| pooled | `cpu` | mnist | 10 | 2 | -0.340 | 0 | 10 | 0.002 | ganomaly is better "
            "(p = 0.002) |") in text
    assert "EGBAD beats GANomaly on 0 classes and loses on 10" in text
    assert "so the survey's claim is not supported here." in text
    assert "## What the numbers say" in text and "ganomaly has the highest mean test AUPRC" in text


def test_fewer_than_six_classes_are_too_few_to_test_not_no_difference(tmp_path):
    """5 classes all one way: the exact p is 2/2^5 = 0.0625, so no result could be significant."""
    from benchmarks import claims

    def test(n):
        by_cell = {(m, k): [{"auprc": v + 0.01 * k}] for k in range(n)
                   for m, v in (("egbad", 0.3), ("ganomaly", 0.6))}
        return claims.paired(by_cell, range(n))
    assert test(5)["p"] == 0.0625 and claims.verdict(test(5)) == "too few classes to test"
    assert claims.verdict(test(6)) == "ganomaly is better (p = 0.031)"
    rows = [_row(m, k, 0, v) for k in range(5) for m, v in (("egbad", 0.3), ("ganomaly", 0.6))]
    assert ("EGBAD beats GANomaly on 0 classes and loses on 5: too few classes to test yet, so "
            "nothing is concluded.") in report.render(rows, str(tmp_path))


def test_columns_put_trained_models_before_the_ensembles_derived_from_them():
    rows = [{"model": m} for m in ("gan3_ensemble", "ganomaly", "anogan_seeds_ensemble", "anogan", "ganomaly")]
    assert tables.columns(rows) == ["anogan", "ganomaly", "anogan_seeds_ensemble", "gan3_ensemble"]


def test_a_cells_wall_time_is_train_plus_evaluate_and_none_when_unrecorded():
    from benchmarks.cells import wall_seconds

    assert wall_seconds({"wall_time_s": {"train": 60.5, "evaluate": 29.5}}) == 90.0
    assert wall_seconds({"wall_time_s": {"train": 60.0}}) == 60.0
    assert wall_seconds({"wall_time_s": {"evaluate": 3.0}}) is None
    assert wall_seconds({}) is None
