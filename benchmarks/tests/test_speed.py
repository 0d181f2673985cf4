"""The speed report's core on a tiny model: one row per model/profile with positive numbers.

Slow (minutes: real timing windows, child processes, whole benchmark cells); `pytest -m "not slow"`
skips them."""

import math
import statistics

import pytest

from benchmarks.tests.conftest import TINY


def test_pause_refuses_itself_and_bad_pids_and_resumes_what_it_stopped(monkeypatch):
    """--pause=<a pid of its own group> stopped the timing itself for good, a typo was ignored,
    and a group it could not stop left the ones stopped before it stopped (killpg recorded)."""
    import os
    import signal
    import subprocess

    from anomaly_toolbox.errors import UsageError
    from benchmarks.timing import paused

    sleepers = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
    try:
        calls, refused = [], sleepers[1].pid

        def killpg(group, sig):
            calls.append((group, sig))
            if group == refused and sig == signal.SIGSTOP:
                raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "killpg", killpg)
        getpgid = os.getpgid  # a pid in group 0 (pid 1 in a container): killpg(0) is our group
        monkeypatch.setattr(os, "getpgid", lambda pid: 0 if pid == 4242 else getpgid(pid))
        for pids, message in [([str(os.getpid())], "it would stop itself"),
                              (["4242"], "it would stop itself"),
                              (["12a"], "positive integers"), (["0"], "positive integers")]:
            with pytest.raises(UsageError, match=f"invalid pause: .*{message}"):
                with paused(pids):
                    pass
        assert calls == []
        with pytest.raises(UsageError, match="may stop"):
            with paused([str(p.pid) for p in sleepers]):
                pass
        first = sleepers[0].pid
        assert calls == [(first, signal.SIGSTOP), (refused, signal.SIGSTOP),
                         (first, signal.SIGCONT)]
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def test_bad_counts_models_and_json_files_are_refused_before_measuring(tmp_path):
    """--batch_size=0 was a ZeroDivisionError and --models=nope an error only after the data
    and the ceiling were measured (minutes); a missing --from_json was a traceback."""
    import subprocess
    import sys

    from anomaly_toolbox.errors import UsageError
    from benchmarks import speed
    from benchmarks.tests.conftest import REPO

    with pytest.raises(UsageError, match="invalid from_json: .*nope.json"):
        speed.render_saved(str(tmp_path / "nope.json"))
    for flag, message in [("--batch_size=0", "error: invalid batch_size: '0'"),
                          ("--models=nope", "error: invalid model: 'nope'"),
                          ("--precisions=float32,auto", "error: invalid precisions: "  # the
                           "'float32,auto' (expected each value once (float32 is listed")]:  # same
        out = subprocess.run([sys.executable, "-m", "benchmarks.speed", flag,
                              f"--data_dir={tmp_path / 'none'}", f"--results_dir={tmp_path}",
                              f"--benchmarks_md={tmp_path / 'b.md'}"],
                             capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-500:]
        assert out.stderr.strip().splitlines()[-1].startswith(message), out.stderr[-500:]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("tool, flag, repeated", [
    ("speed", "--profiles=cpu,cpu", "cpu"), ("speed", "--models=egbad,ganomaly,egbad", "egbad"),
    ("speed", "--precisions=float32,float32", "float32"),
    ("speed_settings", "--cells=egbad,egbad", "egbad"),
    ("blocks_vs_keras", "--models=egbad,egbad", "egbad"),
    ("step_profile", "--precisions=float32,float32", "float32"),
    ("peer", "--precisions=mixed_bfloat16,mixed_bfloat16", "mixed_bfloat16")])
def test_a_value_listed_twice_is_refused_before_measuring(tmp_path, tool, flag, repeated):
    """Its rows were timed twice, minutes each, and printed twice in the table (speed; the
    other tools' lists were not checked at all). speed and blocks_vs_keras refuse it before
    TensorFlow loads; the others import it with their modules, so only a timeout catches them."""
    import os
    import subprocess
    import sys

    from benchmarks.tests.conftest import REPO
    from tests.test_cli import without_tensorflow

    light = tool in ("speed", "blocks_vs_keras")
    env = {**os.environ, **(without_tensorflow(tmp_path / "poison") if light else {})}
    where = [f"--results_dir={tmp_path}", f"--benchmarks_md={tmp_path / 'b.md'}"] \
        if tool == "speed" else []
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{tool}", flag] + where,
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    name, value = flag[2:].split("=")
    said = out.stderr if light else out.stderr.splitlines(True)[-1]  # after TensorFlow's logs
    assert out.returncode == 2 and said == (f"error: invalid {name}: '{value}' (expected each "
                                            f"value once ({repeated} is listed twice))\n"), \
        out.stderr[-500:]
    assert sorted(os.listdir(tmp_path)) == (["poison"] if light else [])


@pytest.mark.slow
def test_speed_report_has_positive_numbers(mnist, monkeypatch):
    from anomaly_toolbox import models
    from benchmarks import speed
    from benchmarks.ceiling import measure_ceiling
    from anomaly_toolbox.data import protocols

    splits = protocols.make_splits(mnist, 0, "pooled", 0)
    ceiling = measure_ceiling(windows=2, steps=1, matmul_size=256, conv_shape=(8, 16, 16, 8, 16))
    assert all(ceiling[k] > 0 for k in ("matmul_gflops", "conv_gflops", "conv_input_grad_gflops",
                                        "conv_filter_grad_gflops"))
    cls = models.get("ganomaly")
    config = {"profile": "tiny", "model": {**cls.DEFAULTS, **TINY}}
    monkeypatch.setattr(speed, "MIN_WINDOW_S", 0.3)
    timed = []  # (windows, steps, seconds) of every train-step timing, the probe first

    def recording(fn, windows, steps):
        timed.append((windows, steps, real_timed_windows(fn, windows, steps)))
        return timed[-1][2]
    real_timed_windows = speed.timed_windows
    monkeypatch.setattr(speed, "timed_windows", recording)
    row = speed.measure("ganomaly", config, splits, batch_size=16, windows=2, window_steps=2,
                        score_images=64, fit_batches=3, val_sample=64, ceiling=ceiling)
    # a tiny model's step takes milliseconds: windows get the steps a 3-step probe says last
    # 0.3 s (wall-time bounds on the windows themselves fail on a loaded machine)
    (probe_windows, probe_steps, probe), timed_row = timed[0], timed[1]
    assert (probe_windows, probe_steps) == (1, 3) and timed_row[:2] == (2, row["window_steps"])
    assert row["window_steps"] == max(2, math.ceil(0.3 / (probe[0] / 3)))
    assert row["train_img_s"] == 16 * row["window_steps"] / statistics.median(timed_row[2])
    assert row["model"] == "ganomaly" and row["profile"] == "tiny"
    assert row["train_img_s"] > 0 and row["score_img_s"] > 0 and row["gflops"] > 0
    # a train step is forward + both conv gradients: more than the forward convs alone
    assert row["flops_per_img"] > 0 and row["flops_by_type"]["Conv2DBackpropFilter"] > 0
    assert row["flops_by_type"]["Conv2DBackpropInput"] > 0 and row["flops_by_type"]["Conv2D"] > 0
    assert 0 < row["outside_share"] < 1 and row["of_matmul"] > 0
    assert row["score_flops_per_img"] > 0 and row["score_gflops"] > 0
    # the same row in bfloat16, rated against a bfloat16 ceiling, side by side with float32
    ceiling16 = measure_ceiling(windows=2, steps=1, matmul_size=256, conv_shape=(8, 16, 16, 8, 16),
                                kinds=("matmul", "conv"), dtype="bfloat16")
    assert ceiling16["dtype"] == "bfloat16" and ceiling16["conv_gflops"] > 0
    row16 = speed.measure("ganomaly", config, splits, batch_size=16, windows=2, window_steps=2,
                          score_images=64, fit_batches=3, val_sample=64, ceiling=ceiling16,
                          precision="mixed_bfloat16")
    assert row16["precision"] == "mixed_bfloat16" and row16["ceiling_now"]["dtype"] == "bfloat16"
    text = speed.render([row, row16], [ceiling, ceiling16])
    assert "| ganomaly | tiny | float32 | 4/8/16 |" in text and "GFLOP/s" in text
    assert "| ganomaly | tiny | mixed_bfloat16 | 4/8/16 |" in text
    assert "Machine ceiling in bfloat16" in text and "### bfloat16 beside float32" in text
    ratio = row16["train_img_s"] / row["train_img_s"]
    assert f"(**{ratio:.2f}**)" in text


@pytest.mark.slow
def test_process_settings_compare_onednn_and_workers_in_children(tmp_path):
    from benchmarks.tests.conftest import DATA_DIR

    from anomaly_toolbox import models
    from benchmarks import report, speed_settings

    cls = models.get("ganomaly")
    config = {"profile": "tiny", "batch_size": 16, "model": {**cls.DEFAULTS, **TINY}}
    row = speed_settings.compare("ganomaly", config, DATA_DIR, rounds=1, windows=1, window_steps=2)
    assert row["profile"] == "tiny"
    assert all(row[k] > 0 for k in ("onednn_off_img_s", "onednn_on_img_s", "onednn_speedup",
                                    "one_worker_img_s", "two_workers_img_s", "two_workers_speedup"))
    # the same seeded weights score the same, to float rounding, with and without oneDNN kernels
    assert 0 <= row["onednn_max_rel_score_diff"] < 1e-4
    (tmp_path / speed_settings.REPORT).write_text(speed_settings.render([row], "cmd"))
    report.write(str(tmp_path), str(tmp_path / "benchmarks.md"))
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks") and "No results yet." in text
    assert "## Speed: process-level settings" in text and "| ganomaly | tiny |" in text


@pytest.mark.slow
def test_whole_cells_give_the_same_results_with_one_or_two_workers(tmp_path):
    import json

    from benchmarks.tests.conftest import DATA_DIR

    from benchmarks import speed_settings

    (tmp_path / "autoencoder_mnist_cpu.json").write_text(json.dumps(
        {"profile": "cpu", "epochs": 1, "batch_size": 32, "model": TINY}))
    cells = speed_settings.compare_cells(["autoencoder"], DATA_DIR, limit=200,
                                         experiments_dir=str(tmp_path))
    assert cells["cells"] == 2 and cells["workers1_s"] > 0 and cells["workers2_s"] > 0
    # one thread or two: the same kernels in the same order, so the same numbers
    assert cells["same_results"], (cells["workers1_auprc"], cells["workers2_auprc"])
    text = speed_settings.render([], "cmd", cells)
    assert "Whole cells (2 cells: autoencoder" in text and "identical" in text


def test_bfloat16_bound_weights_each_op_type_by_its_kernel_ratio():
    from benchmarks.speed_tables import speedup_bound

    base = {"conv_gflops": 100, "conv_input_grad_gflops": 100, "conv_filter_grad_gflops": 100,
            "matmul_gflops": 100}
    fast = {"conv_gflops": 200, "conv_input_grad_gflops": 150, "conv_filter_grad_gflops": 100,
            "matmul_gflops": 400}
    # equal FLOPs in forward, input and filter gradients: 3 / (1/2 + 1/1.5 + 1) = 1.385
    flops = {"Conv2D": 10, "Conv2DBackpropInput": 10, "Conv2DBackpropFilter": 10}
    assert speedup_bound(flops, base, fast) == pytest.approx(3 / (0.5 + 1 / 1.5 + 1))
    # element-wise ops are not sped up; a matmul-only step gets the matmul ratio
    assert speedup_bound({**flops, "Mul": 30}, base, fast) == pytest.approx(
        6 / (0.5 + 1 / 1.5 + 1 + 3))
    assert speedup_bound({"MatMul": 5}, base, fast) == pytest.approx(4.0)


def test_fanogan_score_is_set_beside_each_anogan_search_of_the_same_precision():
    from benchmarks.speed_tables import _fanogan_table

    rows = [{"model": "fanogan", "profile": "paper", "precision": "float32", "score_img_s": 1000.0},
            {"model": "anogan", "profile": "paper", "precision": "float32", "score_img_s": 2.0,
             "score_note": "Γ=500, 16 images only"},
            {"model": "anogan", "profile": "paper", "precision": "mixed_bfloat16",
             "score_img_s": 4.0, "score_note": "Γ=500, 16 images only"}]
    lines = _fanogan_table(rows)
    assert lines[-1] == ("| float32 | paper | 1,000 | paper (Γ=500, 16 images only) | 2 | "
                         "**500×** |")
    assert sum(line.startswith("| float32 | paper") for line in lines) == 1  # bf16 not mixed in
    assert _fanogan_table(rows[1:]) == []


def test_the_timed_step_of_fanogan_is_its_full_gan_stage_step(mnist):
    """Outside fit, the speed tools time f-AnoGAN's critic + generator step (its published
    row), chosen here rather than by the model's own schedule."""
    from anomaly_toolbox import models
    from benchmarks import workload

    cls = models.get("fanogan")
    model = workload.build("fanogan", {**cls.DEFAULTS, **TINY})
    step = workload.compiled_step(model)
    step(workload.real_batches(mnist.x_train, 16, count=1)[0])
    assert int(model.d_optimizer.iterations) == 1 and int(model.g_optimizer.iterations) == 1


def test_the_published_speed_report_renders_again_from_its_measurements():
    """benchmarks.md's speed report is the committed measurements rendered by today's code."""
    import os

    from benchmarks import RESULTS, speed

    with open(os.path.join(RESULTS, "speed.md")) as f:
        assert speed.render_saved(os.path.join(RESULTS, "speed.json")) == f.read()


def test_rounds_give_each_row_its_median_round_and_the_median_same_round_ratio():
    from benchmarks import speed
    from benchmarks.speed_tables import _precision_table

    def row(precision, train, score, n):
        return {"model": "ganomaly", "profile": "paper", "precision": precision, "round": n,
                "train_img_s": train, "gflops": train / 10, "score_img_s": score,
                "score_gflops": score / 10}
    # round 2 ran under a load: both precisions slow in it, its ratio like the others
    rounds = [[row("float32", 100, 1000, 1), row("mixed_bfloat16", 150, 2000, 1)],
              [row("mixed_bfloat16", 60, 900, 2), row("float32", 40, 500, 2)],
              [row("float32", 110, 800, 3), row("mixed_bfloat16", 143, 1200, 3)]]
    f32, bf16 = speed.combine_rounds(rounds)
    assert (f32["precision"], f32["train_img_s"], f32["gflops"]) == ("float32", 100, 10)
    assert (f32["score_img_s"], f32["score_gflops"]) == (800, 80)  # round 3's scoring
    assert f32["train_img_s_rounds"] == [100, 40, 110]
    text = "\n".join(_precision_table([f32, bf16]))
    # same-round ratios 1.5, 1.5, 1.3 (train) and 2.0, 1.8, 1.5 (score); 143/100 would say 1.43
    assert "100 → 143 (**1.50**, 1.30–1.50 over 3 rounds)" in text
    assert "800 → 1,200 (**1.80**, 1.50–2.00 over 3 rounds)" in text
    assert "in 3 rounds with the precisions' order alternating" in text
    # one round: the ratio of the two rows, as a single run always printed it
    one = "\n".join(_precision_table(speed.combine_rounds(rounds[:1])))
    assert "100 → 150 (**1.50**) |" in one and "1,000 → 2,000 (**2.00**) |" in one
    assert "rounds" not in one
    assert [[q for _, _, q in speed.grid(["paper"], ["ganomaly"], ["float32", "bf16"], n)]
            for n in (0, 1)] == [["float32", "bf16"], ["bf16", "float32"]]
