"""Speed report (a benchmark script, not a timed test): where the training and scoring time goes.

  python -m benchmarks.speed --models=ganomaly,egbad --profiles=cpu,paper

For every registered model at the `paper` and `cpu` widths (experiments/<model>_mnist_<profile>.json,
batch size --batch_size for all so rows compare), on real preprocessed MNIST batches:

* train img/s   tf.function(model.train_step), after warm-up, median of --windows timed windows
                of --window_steps steps each (more for fast models: a window lasts >= 2 s);
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

Every number here depends on the load of the machine: the report prints `uptime` with it.
The parts live beside this module: timing, ceiling, flops, workload, epoch_overhead,
saved_model_speed and speed_tables (the markdown). `--from_json` renders the committed
measurements (benchmarks/results/speed.json) again without timing anything.
"""

import json
import math
import os
import statistics
import tempfile
import time

from absl import flags

from anomaly_toolbox import cli
from anomaly_toolbox.run.provenance import git_commit
from benchmarks import BENCHMARKS_MD, RESULTS
from benchmarks.ceiling import measure_ceiling
from benchmarks.epoch_overhead import outside_step
from benchmarks.flops import count_flops
from benchmarks.saved_model_speed import SCORE_BATCH, score_saved_model
from benchmarks.speed_tables import COMPUTE_DTYPE, render
from benchmarks.timing import load_average, paused, sync, timed_windows, vector_set
from benchmarks.workload import build, compiled_step, config, pooled_splits, real_batches

FLAGS = flags.FLAGS
MIN_WINDOW_S = 2.0  # a timed train-step window is at least this long (steps added as needed)


def define_flags():
    """Defined on demand, so that importing this module (tests do) defines no flags."""
    flags.DEFINE_list("models", None, "Registered model names (default: all registered).")
    flags.DEFINE_list("profiles", ["paper", "cpu"], "Profiles: experiments/<model>_mnist_<profile>.json.")
    flags.DEFINE_list("precisions", ["float32"], "Precisions to time every row in (float32, "
                      "mixed_bfloat16); each row is rated against the ceiling of its own dtype.")
    # counts are positive, refused when parsed (0 was a ZeroDivisionError after the ceiling)
    flags.DEFINE_integer("batch_size", 64, "Training batch size for every row.", lower_bound=1)
    flags.DEFINE_integer("rounds", 1, "Times the whole grid is measured, precisions in "
                         "alternating order; each row reports its median round and the ratios "
                         "their median over rounds (min-max). Odd counts give one middle round.",
                         lower_bound=1)
    flags.DEFINE_integer("windows", 5, "Timed windows per measurement (the median is reported).",
                         lower_bound=1)
    flags.DEFINE_integer("window_steps", 10, "Train steps per timed window (at least; more for "
                         "fast models, so that a window lasts MIN_WINDOW_S).", lower_bound=1)
    flags.DEFINE_integer("ceiling_steps", 3, "Ops per timed window of the ceiling measurements.",
                         lower_bound=1)
    flags.DEFINE_integer("matmul_size", 2048, "Side of the square float32 ceiling matmul.",
                         lower_bound=1)
    flags.DEFINE_integer("score_images", 512, "Test images scored per SavedModel timing window.",
                         lower_bound=1)
    flags.DEFINE_integer("slow_score_images", 16, "Images scored when the model's latent search has "
                         ">= 100 steps (AnoGAN paper profile: Γ = 500).", lower_bound=1)
    flags.DEFINE_integer("fit_batches", 20, "Batches per timed keras fit epoch (outside-step "
                         "share).", lower_bound=1)
    flags.DEFINE_integer("val_sample", 512, "Validation images scored (then extrapolated to the "
                         "split).", lower_bound=1)
    flags.DEFINE_string("results_dir", RESULTS, "The report is written to <results_dir>/speed.md "
                        "and appended to --benchmarks_md, regenerated from results_dir.")
    flags.DEFINE_string("benchmarks_md", BENCHMARKS_MD, "Table to regenerate with the report.")
    flags.DEFINE_string("json_output", None, "Also write every measurement as JSON here.")
    flags.DEFINE_string("from_json", None, "Measure nothing: render the report again from a "
                        "--json_output file (same numbers, current table code).")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz "
                        "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")
    flags.DEFINE_list("pause", [], "PIDs whose process groups are stopped while measuring.")
    flags.DEFINE_string("experiments_dir", None, "Folder of <model>_mnist_<profile>.json "
                        "(default: the repository's experiments/).")


def check():
    """Before TensorFlow loads: a value listed twice (--profiles=cpu,cpu, --models=egbad,egbad)
    timed its rows twice, minutes each, and printed each of them twice in the table."""
    from benchmarks.grid_flags import refuse_repeated_flags

    refuse_repeated_flags("models", "profiles", "precisions")


def measure(model_name, config, data, batch_size=64, windows=5, window_steps=10, profile="",
            score_images=512, slow_score_images=16, fit_batches=20, val_sample=512,
            ceiling=None, precision="float32", ceiling_steps=3):
    """One report row: training, FLOPs, SavedModel scoring and outside-step share of one model.

    `data` is a data.Splits (real MNIST); `config` a config.resolve() dict; `ceiling` one of
    measure_ceiling() in the dtype `precision` computes in, measured again after the row with
    `windows` x `ceiling_steps` calls (3 windows of one ~5 ms call each read half the conv
    ceiling in one run).
    """
    import tensorflow as tf

    from anomaly_toolbox.models.precision import policy

    with policy(precision):
        model = build(model_name, config["model"])
    batches = real_batches(data.x_train, batch_size)
    step = compiled_step(model)
    for b in batches[:2]:
        sync(step(b))  # trace + warm-up
    # small models step in ~60 ms: windows of at least MIN_WINDOW_S keep timer and load noise low
    probe = timed_windows(lambda i: step(batches[i % len(batches)]), 1, 3)[0] / 3
    window_steps = max(window_steps, math.ceil(MIN_WINDOW_S / probe))
    seconds = timed_windows(lambda i: step(batches[i % len(batches)]), windows, window_steps)
    img_s = batch_size * window_steps / statistics.median(seconds)
    total, by_type, graph_total = count_flops(step.get_concrete_function(batches[0]))
    conv_types = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul")
    row = {"model": model_name, "profile": profile or config.get("profile", ""),
           "precision": precision,
           "filters": list(config["model"]["filters"]),
           "latent_dim": config["model"]["latent_dim"], "batch_size": batch_size,
           "fit_jit_compile": bool(model.jit_compile), "window_steps": window_steps,
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
        now = measure_ceiling(windows, ceiling_steps, ceiling["matmul_size"],
                              tuple(ceiling["conv_shape"]),
                              kinds=("matmul", "conv"), dtype=ceiling.get("dtype", "float32"))
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


def combine_rounds(rounds):
    """One row per (model, profile, precision) from the rows of every round: the training
    columns of its median-train round, the scoring columns of its median-score round (lower
    median for an even count), and every round's train_img_s / score_img_s beside them."""
    by_key = {}
    for rows in rounds:
        for r in rows:
            by_key.setdefault((r["model"], r["profile"], r["precision"]), []).append(r)
    order = [(r["model"], r["profile"], r["precision"]) for r in rounds[0]]
    out = []
    for key in order:
        runs = by_key[key]
        train = statistics.median_low(r["train_img_s"] for r in runs)
        score = statistics.median_low(r["score_img_s"] for r in runs)
        row = dict(next(r for r in runs if r["train_img_s"] == train))
        scored = next(r for r in runs if r["score_img_s"] == score)
        row.update({k: v for k, v in scored.items() if k.startswith("score_")})
        row.pop("round", None)  # two rounds may have given its columns
        row["train_img_s_rounds"] = [r["train_img_s"] for r in runs]
        row["score_img_s_rounds"] = [r["score_img_s"] for r in runs]
        out.append(row)
    return out


# -------------------------------------------------------------------------------------- main

def render_saved(path):
    """The report of a --json_output file (benchmarks/results/speed.json: the published run)."""
    from anomaly_toolbox.errors import UsageError

    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError("from_json", path, f"a --json_output file ({e})") from e
    ceilings = saved.get("ceilings") or {"float32": saved["ceiling"]}
    meta = {k: saved[k] for k in ("command", "load", "load_after", "machine") if k in saved}
    return render(saved["rows"], list(ceilings.values()), meta)


def _write(text):
    from benchmarks import report

    print(text)
    report.write_section(FLAGS.results_dir, report.SPEED_REPORT, text)
    report.write(FLAGS.results_dir, FLAGS.benchmarks_md)


def grid(profiles, names, precisions, round_index):
    """The rows of one round in order: precisions reversed in every other round."""
    order = precisions if round_index % 2 == 0 else precisions[::-1]
    return [(p, m, q) for p in profiles for m in names for q in order]


def body():
    import platform

    import tensorflow as tf

    from anomaly_toolbox import models
    from anomaly_toolbox.files import write_atomic
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.models import precision as precision_lib
    from benchmarks.grid_flags import refuse_repeats

    if FLAGS.from_json:
        _write(render_saved(FLAGS.from_json))
        return
    try:
        precisions = [precision_lib.resolve(p) for p in FLAGS.precisions]
    except UsageError as e:
        raise UsageError("precisions", ",".join(FLAGS.precisions),
                         f"each one of {', '.join(precision_lib.PRECISIONS)}") from e
    refuse_repeats("precisions", ",".join(FLAGS.precisions), precisions)  # auto: float32 here
    names = FLAGS.models or models.names()
    configs = {(name, profile): config(name, profile, FLAGS.experiments_dir)  # a bad model or
               for profile in FLAGS.profiles for name in names}  # profile: before the minutes
    with paused(FLAGS.pause):
        load_before = load_average()
        splits = pooled_splits(FLAGS.data_dir)
        print(f"{load_before}\nceiling ...", flush=True)
        ceilings = {p: measure_ceiling(FLAGS.windows, FLAGS.ceiling_steps, FLAGS.matmul_size,
                                       dtype=COMPUTE_DTYPE[p]) for p in precisions}
        print(json.dumps(ceilings), flush=True)
        rounds = []
        for n in range(FLAGS.rounds):
            rows = []
            # precisions alternate their order from round to round: a drift in the load then
            # favours neither
            for profile, name, precision in grid(FLAGS.profiles, names, precisions, n):
                cfg = configs[name, profile]
                t0 = time.time()
                row = measure(name, cfg, splits, FLAGS.batch_size, FLAGS.windows,
                              FLAGS.window_steps, profile, FLAGS.score_images,
                              FLAGS.slow_score_images, FLAGS.fit_batches, FLAGS.val_sample,
                              ceilings[precision], precision, FLAGS.ceiling_steps)
                row["load"], row["round"] = load_average(), n + 1
                rows.append(row)
                print(f"round {n + 1}: {name} {profile} {precision}: "
                      f"{row['train_img_s']:.1f} img/s, "
                      f"{row['flops_per_img'] / 1e6:.1f} MFLOP/img, {row['gflops']:.2f} GFLOP/s, "
                      f"score {row['score_img_s']:.1f} img/s, "
                      f"outside {100 * row['outside_share']:.1f}% "
                      f"({time.time() - t0:.0f}s; {row['load']})", flush=True)
            rounds.append(rows)
        load_after = load_average()
    meta = {"command": "python -m benchmarks.speed " + " ".join(
                f"--{k}={','.join(v) if isinstance(v, list) else v}"
                for k, v in (("models", names), ("profiles", FLAGS.profiles),
                             ("precisions", precisions),
                             ("batch_size", FLAGS.batch_size), ("rounds", FLAGS.rounds),
                             ("windows", FLAGS.windows),
                             ("window_steps", FLAGS.window_steps),
                             ("fit_batches", FLAGS.fit_batches))),
            "load": load_before, "load_after": load_after,
            "machine": f"{platform.machine()} ({vector_set()}), {os.cpu_count()} cpus, "
                       f"TF {tf.__version__}, commit {git_commit()}"}
    rows = combine_rounds(rounds)
    _write(render(rows, list(ceilings.values()), meta))
    if FLAGS.json_output:
        write_atomic(FLAGS.json_output, json.dumps(
            {"ceilings": ceilings, "rows": rows, **meta,
             **({"rounds": rounds} if len(rounds) > 1 else {})},
            indent=1, default=str) + "\n")


if __name__ == "__main__":
    cli.main(define_flags, body, check)
