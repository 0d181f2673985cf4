"""Speed report (a benchmark script, not a timed test): where the training and scoring time goes.

  python -m anomaly_toolbox.bench.speed --models=ganomaly,egbad --profiles=cpu,paper

For every registered model at the `paper` and `cpu` widths (experiments/<model>_mnist_<profile>.json,
batch size --batch_size for all so rows compare), on real preprocessed MNIST batches:

* train img/s   tf.function(model.train_step), after warm-up, median of --windows timed windows
                of --window_steps steps each;
* FLOPs/img     float operations of ONE train step, counted from the step's concrete-function
                graph with TensorFlow's own op statistics (tf.compat.v1.profiler with
                ProfileOptionBuilder.float_operation(); the registered "flops" statistics count
                Conv2D, Conv2DBackpropInput (= transposed convolutions and conv input
                gradients), Conv2DBackpropFilter, MatMul and the element-wise ops), summed over
                the ops the step's outputs and variable updates depend on (the whole graph also
                holds gradient ops that TF prunes before running it), / batch;
* GFLOP/s       FLOPs/img x img/s, and its ratio to this run's machine ceiling: a float32
                matmul (--matmul_size) and a 4x4 stride-2 'same' convolution at the paper
                models' middle layer (64x16x16x64 -> 64x8x8x128), both tf.functions;
* score img/s   the exported SavedModel (export.save -> tf.saved_model.load -> loaded.score) on
                uint8 batches of 256 test images; AnoGAN searches with its profile's Γ, and when
                Γ >= 100 only --slow_score_images images are scored (one batch);
* outside step  the share of an epoch (estimated for the real pooled MNIST split, class 0)
                spent outside train steps: keras fit's per-batch cost beyond the raw step
                (input pipeline, callbacks, logs), validation scoring, the two checkpoint
                saves and the TensorBoard scalars, each timed as training.py does it.

--investigate=MODELS adds, per model, an op-type profile of the train step (TF profiler trace) and
before/after ratios, measured with interleaved windows in one process, of candidate changes
(XLA jit_compile for the train step and for scoring, op determinism off, keras fit without the
per-batch callback, a raw step instead of fit), each with the score difference it causes.
Every number here depends on the load of the machine: the report prints `uptime` with it.
The parts live beside this module: timing, ceiling, flops, workload, epoch_overhead,
saved_model_speed and speed_investigation.
"""

import json
import os
import statistics
import tempfile
import time

from absl import flags

from anomaly_toolbox import cli
from anomaly_toolbox.bench.ceiling import measure_ceiling
from anomaly_toolbox.bench.epoch_overhead import outside_step
from anomaly_toolbox.bench.flops import count_flops
from anomaly_toolbox.bench.saved_model_speed import SCORE_BATCH, score_saved_model
from anomaly_toolbox.bench.speed_investigation import investigate
from anomaly_toolbox.bench.timing import load_average, sync, timed_windows
from anomaly_toolbox.bench.workload import build, config_path, real_batches

FLAGS = flags.FLAGS


def define_flags():
    """Defined on demand, so that importing this module (tests do) defines no flags."""
    flags.DEFINE_list("models", None, "Registered model names (default: all registered).")
    flags.DEFINE_list("profiles", ["paper", "cpu"], "Profiles: experiments/<model>_mnist_<profile>.json.")
    flags.DEFINE_integer("batch_size", 64, "Training batch size for every row.")
    flags.DEFINE_integer("windows", 5, "Timed windows per measurement (the median is reported).")
    flags.DEFINE_integer("window_steps", 10, "Train steps per timed window.")
    flags.DEFINE_integer("ceiling_steps", 3, "Ops per timed window of the ceiling measurements.")
    flags.DEFINE_integer("matmul_size", 2048, "Side of the square float32 ceiling matmul.")
    flags.DEFINE_integer("score_images", 512, "Test images scored per SavedModel timing window.")
    flags.DEFINE_integer("slow_score_images", 16, "Images scored when the model's latent search has "
                         ">= 100 steps (AnoGAN paper profile: Γ = 500).")
    flags.DEFINE_integer("fit_batches", 20, "Batches per timed keras fit epoch (outside-step share).")
    flags.DEFINE_integer("val_sample", 512, "Validation images scored (then extrapolated to the split).")
    flags.DEFINE_list("investigate", [], "Models (at each profile) whose train step is also "
                      "profiled by op type, with A/B ratios of candidate changes.")
    flags.DEFINE_string("results_dir", "results", "The report is written to <results_dir>/speed.md "
                        "and appended to --benchmarks_md, regenerated from results_dir.")
    flags.DEFINE_string("benchmarks_md", "benchmarks.md", "Table to regenerate with the report.")
    flags.DEFINE_string("json_output", None, "Also write every measurement as JSON here.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz "
                        "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")
    flags.DEFINE_string("experiments_dir", None, "Folder of <model>_mnist_<profile>.json "
                        "(default: the repository's experiments/).")


def measure(model_name, config, data, batch_size=64, windows=5, window_steps=10, profile="",
            score_images=512, slow_score_images=16, fit_batches=20, val_sample=512,
            ceiling=None):
    """One report row: training, FLOPs, SavedModel scoring and outside-step share of one model.

    `data` is a data.Splits (real MNIST); `config` a config.resolve() dict.
    """
    import tensorflow as tf

    model = build(model_name, config["model"])
    batches = real_batches(data.x_train, batch_size)
    step = tf.function(model.train_step)
    for b in batches[:2]:
        sync(step(b))  # trace + warm-up
    seconds = timed_windows(lambda i: step(batches[i % len(batches)]), windows, window_steps)
    img_s = batch_size * window_steps / statistics.median(seconds)
    total, by_type, graph_total = count_flops(step.get_concrete_function(batches[0]))
    conv_types = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul")
    row = {"model": model_name, "profile": profile or config.get("profile", ""),
           "filters": list(config["model"]["filters"]),
           "latent_dim": config["model"]["latent_dim"], "batch_size": batch_size,
           "fit_jit_compile": bool(model.jit_compile),
           "train_img_s": img_s, "train_img_s_windows": [batch_size * window_steps / s
                                                          for s in seconds],
           "flops_per_img": total / batch_size,
           "graph_flops_per_img": graph_total / batch_size,
           "conv_matmul_flop_share": sum(by_type.get(t, 0) for t in conv_types) / max(total, 1),
           "flops_by_type": by_type}
    row["gflops"] = row["flops_per_img"] * img_s / 1e9
    if ceiling:
        # The load moves: the ratio uses the ceiling measured again right after this row's
        # windows (the run's start-of-run ceiling is in the header).
        now = measure_ceiling(3, 1, ceiling["matmul_size"], tuple(ceiling["conv_shape"]),
                              kinds=("matmul", "conv"))
        row["ceiling_now"] = now
        row["of_matmul"] = row["gflops"] / now["matmul_gflops"]
        row["of_conv"] = row["gflops"] / now["conv_gflops"]
    with tempfile.TemporaryDirectory(prefix="speed-") as tmpdir:
        row.update(outside_step(model, step, batches, data, batch_size, windows, fit_batches,
                                val_sample, tmpdir, slow_score_images))
        row.update(score_saved_model(model, model_name, config, data.x_test, windows,
                                     score_images, slow_score_images, tmpdir))
    if "search_steps" not in config["model"]:  # a search's while loop hides its FLOP count
        from anomaly_toolbox.data.preprocessing import IMAGE_SIZE

        score_fn = tf.function(model.score).get_concrete_function(
            tf.TensorSpec([SCORE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32))
        row["score_flops_per_img"] = count_flops(score_fn)[0] / SCORE_BATCH
        row["score_gflops"] = row["score_flops_per_img"] * row["score_img_s"] / 1e9
        if ceiling:
            row["score_of_conv"] = row["score_gflops"] / row["ceiling_now"]["conv_gflops"]
    return row


# ------------------------------------------------------------------------------------ report

def _fmt(v, digits=3):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def render(rows, ceiling, meta=None, investigations=()):
    """Markdown section: the rows of measure() and the ceiling of measure_ceiling()."""
    meta = meta or {}
    lines = ["## Speed report", ""]
    if meta.get("command"):
        lines += [f"Command: `{meta['command']}`", ""]
    if meta.get("load"):
        lines += [f"Load: `{meta['load']}` (before) / `{meta.get('load_after', '?')}` (after); "
                  f"{meta.get('machine', '')}", ""]
    conv = "x".join(str(v) for v in ceiling["conv_shape"][:4]) + \
        f" -> {ceiling['conv_shape'][-1]} channels"
    lines += [
        f"Machine ceiling (this run, median of windows): float32 matmul "
        f"{ceiling['matmul_size']}^2 **{_fmt(ceiling['matmul_gflops'])} GFLOP/s**; "
        f"Conv2D 4x4 stride 2 'same' {conv}: forward **{_fmt(ceiling['conv_gflops'])}**, "
        f"input gradient (= Conv2DTranspose) {_fmt(ceiling.get('conv_input_grad_gflops'))}, "
        f"filter gradient {_fmt(ceiling.get('conv_filter_grad_gflops'))} GFLOP/s.", "",
        "| model | profile | filters | train img/s | MFLOP/img (train step) | GFLOP/s | "
        "of matmul | of conv | score img/s (SavedModel) | score MFLOP/img | score GFLOP/s (of conv) | "
        "outside steps (fit / val / ckpt / log) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        outside = (f"{100 * r['outside_share']:.1f}% ("
                   f"{100 * r['outside_fit_overhead_share']:.1f} / "
                   f"{100 * r['outside_validation_share']:.1f} / "
                   f"{100 * r['outside_checkpoints_share']:.1f} / "
                   f"{100 * r['outside_logging_share']:.2f})") if "outside_share" in r else "—"
        score = _fmt(r.get("score_img_s")) + (f" ({r['score_note']})" if r.get("score_note") else "")
        score_flops = (f"{_fmt(r['score_flops_per_img'] / 1e6)} | {_fmt(r['score_gflops'])} "
                       f"({100 * r.get('score_of_conv', 0):.0f}%)" if "score_gflops" in r
                       else "— (search loop) | —")
        lines.append(
            f"| {r['model']} | {r['profile']} | {'/'.join(map(str, r['filters']))} | "
            f"{_fmt(r['train_img_s'])} | {_fmt(r['flops_per_img'] / 1e6)} | {_fmt(r['gflops'])} | "
            f"{100 * r.get('of_matmul', 0):.0f}% | {100 * r.get('of_conv', 0):.0f}% | {score} | "
            f"{score_flops} | {outside} |")
    lines += ["", "train img/s: tf.function(model.train_step) on real MNIST batches of "
              f"{rows[0]['batch_size'] if rows else '?'}, after warm-up, median of windows. "
              "FLOPs: one train step's concrete-function graph (fixed batch shape), TF's registered "
              "float-op statistics (those tf.compat.v1.profiler's float_operation() sums: Conv2D, "
              "Conv2DBackpropInput, Conv2DBackpropFilter, MatMul, element-wise ops) over the ops "
              "the step's outputs and variable updates depend on (the profiler's whole-graph "
              "total also counts gradient ops TF prunes at run time), / batch. GFLOP/s ratios: "
              "to a matmul and a conv measured again right after the row (load drifts). Score MFLOP/img: "
              "model.score's graph at batch 256, counted the same way (not for a latent search, whose "
              "loop the count cannot see); score GFLOP/s uses the SavedModel's img/s. Outside steps: share of an "
              "estimated full pooled-MNIST epoch (class 0 split) spent outside raw train steps: "
              "keras fit's extra per-batch cost (tf.data pipeline, callbacks, logs), validation "
              "scoring (training.score_images, extrapolated from a sample), the best+last "
              "checkpoint saves and the TensorBoard scalars."]
    if rows:
        lines += ["", "| model | profile | epoch (est.) | raw step | fit step (+ per fit call) | "
                  "conv+matmul share of FLOPs | whole-graph MFLOP/img (unpruned) | "
                  "fit jit_compile |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "epoch_s" not in r:
                continue
            lines.append(f"| {r['model']} | {r['profile']} | {r['epoch_s']:.0f} s "
                         f"({r['steps_per_epoch']} steps) | {1e3 * r['raw_step_s']:.0f} ms | "
                         f"{1e3 * r['fit_step_s']:.0f} ms (+{r['fit_fixed_s']:.1f} s) | "
                         f"{100 * r['conv_matmul_flop_share']:.1f}% | "
                         f"{_fmt(r['graph_flops_per_img'] / 1e6)} | {r['fit_jit_compile']} |")
    for inv in investigations:
        lines += ["", f"### {inv['model']} ({inv['profile']}): where the step's time goes", ""]
        prof = inv.get("op_profile") or {}
        if prof:
            lines.append("Op-type self-time share (TF profiler, 5 steps, determinism on): " +
                         ", ".join(f"{t} {100 * s:.0f}%" for t, s in prof["top"]) + ".")
        lines += ["", "| candidate change | before (s/step) | after (s/step) | after/before | note |",
                  "|---|---|---|---|---|"]
        for ab in inv.get("ab", []):
            lines.append(f"| {ab['change']} | {ab['before_s']:.3f} | {ab['after_s']:.3f} | "
                         f"**{ab['ratio']:.2f}** | {ab['note']} |")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------- main

def body():
    import platform

    import tensorflow as tf

    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import models
    from anomaly_toolbox.bench import report
    from anomaly_toolbox.data import datasets, protocols
    from anomaly_toolbox.files import write_atomic

    names = FLAGS.models or models.names()
    load_before = load_average()
    raw = datasets.load("mnist", FLAGS.data_dir)
    splits = protocols.make_splits(raw, 0, "pooled", 0)
    print(f"{load_before}\nceiling ...", flush=True)
    ceiling = measure_ceiling(FLAGS.windows, FLAGS.ceiling_steps, FLAGS.matmul_size)
    print(json.dumps(ceiling), flush=True)
    rows, investigations = [], []
    for profile in FLAGS.profiles:
        for name in names:
            cfg = config_lib.resolve(models.get(name),
                                     config_path(name, profile, FLAGS.experiments_dir))
            t0 = time.time()
            row = measure(name, cfg, splits, FLAGS.batch_size, FLAGS.windows, FLAGS.window_steps,
                          profile, FLAGS.score_images, FLAGS.slow_score_images, FLAGS.fit_batches,
                          FLAGS.val_sample, ceiling)
            row["load"] = load_average()
            rows.append(row)
            print(f"{name} {profile}: {row['train_img_s']:.1f} img/s, "
                  f"{row['flops_per_img'] / 1e6:.1f} MFLOP/img, {row['gflops']:.2f} GFLOP/s, "
                  f"score {row['score_img_s']:.1f} img/s, outside {100 * row['outside_share']:.1f}% "
                  f"({time.time() - t0:.0f}s; {row['load']})", flush=True)
            if name in FLAGS.investigate:
                inv = investigate(name, cfg, splits, FLAGS.batch_size,
                                  fit_batches=FLAGS.fit_batches)
                investigations.append(inv)
                print(json.dumps(inv, default=str), flush=True)
    meta = {"command": "python -m anomaly_toolbox.bench.speed " + " ".join(
                f"--{k}={','.join(v) if isinstance(v, list) else v}"
                for k, v in (("models", names), ("profiles", FLAGS.profiles),
                             ("batch_size", FLAGS.batch_size), ("windows", FLAGS.windows),
                             ("window_steps", FLAGS.window_steps),
                             ("fit_batches", FLAGS.fit_batches),
                             ("investigate", FLAGS.investigate))),
            "load": load_before, "load_after": load_average(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, TF {tf.__version__}"}
    text = render(rows, ceiling, meta, investigations)
    print(text)
    os.makedirs(FLAGS.results_dir, exist_ok=True)
    write_atomic(os.path.join(FLAGS.results_dir, report.SPEED_REPORT), text)
    report.write(FLAGS.results_dir, FLAGS.benchmarks_md)
    if FLAGS.json_output:
        write_atomic(FLAGS.json_output, json.dumps(
            {"ceiling": ceiling, "rows": rows, "investigations": investigations, **meta},
            indent=1, default=str) + "\n")


if __name__ == "__main__":
    cli.main(define_flags, body)
