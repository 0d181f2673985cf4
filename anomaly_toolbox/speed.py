"""Speed report (a benchmark script, not a timed test): where the training and scoring time goes.

  python -m anomaly_toolbox.speed --models=ganomaly,egbad --profiles=cpu,paper --output=speed.md

For every registered model at the `paper` and `cpu` widths (experiments/<model>_mnist_<profile>.json,
batch size --batch_size for all so rows compare), on real preprocessed MNIST batches:

* train img/s   tf.function(model.train_step), after warm-up, median of --windows timed windows
                of --window_steps steps each;
* FLOPs/img     float operations of ONE train step, counted from the step's concrete-function
                graph with TensorFlow's own op statistics (tf.compat.v1.profiler with
                ProfileOptionBuilder.float_operation(); the registered "flops" statistics count
                Conv2D, Conv2DBackpropInput (= transposed convolutions and conv input
                gradients), Conv2DBackpropFilter, MatMul and the element-wise ops), / batch;
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

--investigate adds, per model, an op-type profile of the train step (TF profiler trace) and
before/after ratios, measured with interleaved windows in one process, of candidate changes
(XLA jit_compile, op determinism off, no per-batch callback in fit).
Every number here depends on the load of the machine: the report prints `uptime` with it.
"""

import json
import os
import statistics
import subprocess
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
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
flags.DEFINE_bool("investigate", False, "Also profile op types and A/B candidate changes.")
flags.DEFINE_string("output", "speed.md", "Markdown report, written atomically.")
flags.DEFINE_string("json_output", None, "Also write every measurement as JSON here.")
flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz "
                    "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")
flags.DEFINE_string("experiments_dir", None, "Folder of <model>_mnist_<profile>.json "
                    "(default: the repository's experiments/).")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW_SEARCH_STEPS = 100
SCORE_BATCH = 256
CONV_CEILING_SHAPE = (64, 16, 16, 64, 128)  # batch, side, side, in channels, out channels


# ------------------------------------------------------------------------------------ timing

def load_average():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def _sync(result):
    """Blocks until `result` (a tensor or a dict/list of them) is computed."""
    import tensorflow as tf

    for t in tf.nest.flatten(result):
        if hasattr(t, "numpy"):
            t.numpy()
            return


def timed_windows(fn, windows, steps):
    """Seconds of each of `windows` windows of `steps` calls of fn(i) (each synced at the end)."""
    seconds = []
    i = 0
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(i)
            i += 1
        _sync(out)
        seconds.append(time.perf_counter() - t0)
    return seconds


def interleaved_ratio(fn_a, fn_b, windows, steps):
    """Windows of A and B alternated (A B B A ...), so load drifts hit both; returns
    (median s/step of A, median s/step of B, median over pairs of time(B) / time(A))."""
    a, b, ratios = [], [], []
    for w in range(windows):
        order = (fn_a, fn_b) if w % 2 == 0 else (fn_b, fn_a)
        t = {}
        for fn in order:
            t[fn] = timed_windows(fn, 1, steps)[0] / steps
        a.append(t[fn_a])
        b.append(t[fn_b])
        ratios.append(t[fn_b] / t[fn_a])
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


# ----------------------------------------------------------------------------------- ceiling

def measure_ceiling(windows=5, steps=3, matmul_size=2048, conv_shape=CONV_CEILING_SHAPE):
    """Machine ceiling in GFLOP/s (medians): float32 matmul, and a 4x4 stride-2 'same'
    convolution forward, its input gradient (= a transposed convolution) and filter gradient."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    n = matmul_size
    a, b = rng.normal([n, n]), rng.normal([n, n])
    matmul = tf.function(lambda: tf.matmul(a, b))
    batch, side, _, cin, cout = conv_shape
    x = rng.normal([batch, side, side, cin])
    w = rng.normal([4, 4, cin, cout])
    dy = rng.normal([batch, side // 2, side // 2, cout])
    conv = tf.function(lambda: tf.nn.conv2d(x, w, 2, "SAME"))
    conv_input_grad = tf.function(lambda: tf.nn.conv2d_transpose(
        dy, w, [batch, side, side, cin], 2, "SAME"))
    conv_filter_grad = tf.function(lambda: tf.compat.v1.nn.conv2d_backprop_filter(
        x, [4, 4, cin, cout], dy, [1, 2, 2, 1], "SAME"))
    conv_flops = 2 * batch * (side // 2) ** 2 * cout * 16 * cin
    result = {"matmul_size": n, "conv_shape": list(conv_shape)}
    for key, fn, flops in (("matmul", matmul, 2 * n ** 3), ("conv", conv, conv_flops),
                           ("conv_input_grad", conv_input_grad, conv_flops),
                           ("conv_filter_grad", conv_filter_grad, conv_flops)):
        _sync(fn())  # trace + warm-up
        seconds = timed_windows(lambda i: fn(), windows, steps)
        result[f"{key}_gflops"] = flops * steps / statistics.median(seconds) / 1e9
    return result


# ------------------------------------------------------------------------------------- FLOPs

def count_flops(concrete_fn):
    """(total, {op type: flops}) of one execution of a concrete function's graph, from TF's
    registered "flops" op statistics; the total is tf.compat.v1.profiler's, the breakdown ours
    from the same statistics (they agree)."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.profiler.internal import flops_registry  # noqa: F401 (registers)

    graph = concrete_fn.graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    total = tf.compat.v1.profiler.profile(graph=graph, cmd="op", options=options).total_float_ops
    by_type = {}
    for op in graph.get_operations():
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # no shape or no statistics registered
            value = None
        if value:
            by_type[op.type] = by_type.get(op.type, 0) + int(value)
    return int(total), by_type


# -------------------------------------------------------------------------------------- model

def config_path(model_name, profile, experiments_dir=None):
    return os.path.join(experiments_dir or os.path.join(REPO, "experiments"),
                        f"{model_name}_mnist_{profile}.json")


def build(model_name, model_config, deterministic=True, seed=0):
    """The model as training.run builds it (seed, op determinism, then compile)."""
    import keras
    import tensorflow as tf

    from anomaly_toolbox import registry

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    model = registry.get(model_name)(**model_config, channels=1)
    model.compile()
    return model


def real_batches(images, batch_size, count=8):
    """`count` distinct preprocessed batches of real MNIST images, cycled by the timers."""
    from anomaly_toolbox.preprocessing import to_model_input

    count = max(1, min(count, len(images) // batch_size))
    return [to_model_input(images[i * batch_size:(i + 1) * batch_size]) for i in range(count)]


def _score_saved_model(model, model_name, config, x_test, windows, score_images,
                       slow_score_images, tmpdir):
    import tensorflow as tf

    from anomaly_toolbox import export

    path = export.save(model, os.path.join(tmpdir, f"saved_model_{model_name}"), channels=1,
                       threshold=0.0, metadata={"model": model_name, "dataset": "mnist",
                                                "channels": 1, "config": config})
    loaded = tf.saved_model.load(path)
    slow = config["model"].get("search_steps", 0) >= SLOW_SEARCH_STEPS
    n = min(slow_score_images if slow else score_images, len(x_test))
    images = tf.constant(x_test[:n])
    batches = [images[i:i + SCORE_BATCH] for i in range(0, n, SCORE_BATCH)]
    _sync(loaded.score(images[:min(n, 2 if slow else SCORE_BATCH)]))  # warm-up
    seconds = timed_windows(lambda i: [loaded.score(b) for b in batches][-1],
                            1 if slow else max(1, min(windows, 3)), 1)
    return {"score_img_s": n / statistics.median(seconds), "score_images": n,
            "score_note": (f"Γ={config['model']['search_steps']}, {n} images only" if slow
                           else (f"Γ={config['model']['search_steps']}"
                                 if "search_steps" in config["model"] else ""))}


def _outside_step(model, step, batches, splits, batch_size, windows, fit_batches, val_sample,
                  tmpdir):
    """Per-epoch seconds outside train steps, as training._train spends them, for the real
    split sizes: keras fit per batch beyond the raw step (from timed short fits), validation
    scoring (extrapolated from val_sample images), two checkpoint saves, the scalar log."""
    import numpy as np
    import tensorflow as tf

    from anomaly_toolbox import metrics, training
    from anomaly_toolbox.preprocessing import train_dataset

    x_fit = splits.x_train[:fit_batches * batch_size]
    fit_batches = len(x_fit) // batch_size
    x_fit = x_fit[:fit_batches * batch_size]
    stop = training._StopOnNonFinite()
    model.fit(train_dataset(x_fit[:2 * batch_size], batch_size, 0, 0), epochs=1, verbose=0,
              shuffle=False, callbacks=[stop])  # builds keras' train_function
    fit_s, raw_s = [], []
    for w in range(max(1, min(windows, 3))):
        t0 = time.perf_counter()
        model.fit(train_dataset(x_fit, batch_size, 0, w), epochs=1, verbose=0, shuffle=False,
                  callbacks=[stop])
        fit_s.append((time.perf_counter() - t0) / fit_batches)
        raw_s.append(statistics.median(timed_windows(
            lambda i: step(batches[i % len(batches)]), 1, fit_batches)) / fit_batches)
    fit_step, raw_step = statistics.median(fit_s), statistics.median(raw_s)

    x_val = splits.x_val[:val_sample]
    training.score_images(model, x_val[:8])  # traces the scorer
    t0 = time.perf_counter()
    scores = training.score_images(model, x_val)
    val_per_image = (time.perf_counter() - t0) / len(x_val)
    fake = np.random.default_rng(0).normal(size=len(splits.y_val))
    t0 = time.perf_counter()
    metrics.ranking_metrics(fake, splits.y_val)
    val_metrics_s = time.perf_counter() - t0
    del scores

    state = {"epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "best_auprc": tf.Variable(-1.0, dtype=tf.float64, trainable=False),
             "best_epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "train_seconds": tf.Variable(0.0, dtype=tf.float64, trainable=False)}
    last = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, **state),
                                      os.path.join(tmpdir, "checkpoints", "last"), 1)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                      os.path.join(tmpdir, "checkpoints", "best"), 1)
    ckpt = []
    for _ in range(2):
        t0 = time.perf_counter()
        best.save()
        last.save()
        ckpt.append(time.perf_counter() - t0)
    writer = tf.summary.create_file_writer(os.path.join(tmpdir, "logs"))
    t0 = time.perf_counter()
    training._log_scalars(writer, 1, {"loss": 1.0, "val/auprc": 0.5, "val/auroc": 0.5})
    log_s = time.perf_counter() - t0

    steps = -(-len(splits.x_train) // batch_size)
    parts = {"fit_overhead": steps * max(fit_step - raw_step, 0.0),
             "validation": val_per_image * len(splits.y_val) + val_metrics_s,
             "checkpoints": min(ckpt), "logging": log_s}
    epoch = steps * raw_step + sum(parts.values())
    return {"epoch_s": epoch, "steps_per_epoch": steps, "fit_step_s": fit_step,
            "raw_step_s": raw_step, "outside_share": sum(parts.values()) / epoch,
            **{f"outside_{k}_share": v / epoch for k, v in parts.items()}}


def measure(model_name, config, data, batch_size=64, windows=5, window_steps=10, profile="",
            score_images=512, slow_score_images=16, fit_batches=20, val_sample=512,
            ceiling=None):
    """One report row: training, FLOPs, SavedModel scoring and outside-step share of one model.

    `data` is a protocols.Splits (real MNIST); `config` a config.resolve() dict.
    """
    import tensorflow as tf

    model = build(model_name, config["model"])
    batches = real_batches(data.x_train, batch_size)
    step = tf.function(model.train_step)
    for b in batches[:2]:
        _sync(step(b))  # trace + warm-up
    seconds = timed_windows(lambda i: step(batches[i % len(batches)]), windows, window_steps)
    img_s = batch_size * window_steps / statistics.median(seconds)
    total, by_type = count_flops(step.get_concrete_function(batches[0]))
    conv_types = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul")
    row = {"model": model_name, "profile": profile or config.get("profile", ""),
           "filters": list(config["model"]["filters"]),
           "latent_dim": config["model"]["latent_dim"], "batch_size": batch_size,
           "fit_jit_compile": bool(model.jit_compile),
           "train_img_s": img_s, "train_img_s_windows": [batch_size * window_steps / s
                                                          for s in seconds],
           "flops_per_img": total / batch_size,
           "conv_matmul_flop_share": sum(by_type.get(t, 0) for t in conv_types) / max(total, 1),
           "flops_by_type": by_type}
    row["gflops"] = row["flops_per_img"] * img_s / 1e9
    if ceiling:
        row["of_matmul"] = row["gflops"] / ceiling["matmul_gflops"]
        row["of_conv"] = row["gflops"] / ceiling["conv_gflops"]
    with tempfile.TemporaryDirectory(prefix="speed-") as tmpdir:
        row.update(_outside_step(model, step, batches, data, batch_size, windows, fit_batches,
                                 val_sample, tmpdir))
        row.update(_score_saved_model(model, model_name, config, data.x_test, windows,
                                      score_images, slow_score_images, tmpdir))
    return row


# ------------------------------------------------------------------------------ investigation

def op_profile(step, batches, steps=5, top=12):
    """Self-time share per op type over `steps` train steps, from a TF profiler trace."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    with tempfile.TemporaryDirectory(prefix="speed-trace-") as logdir:
        tf.profiler.experimental.start(logdir)
        for i in range(steps):
            out = step(batches[i % len(batches)])
        _sync(out)
        tf.profiler.experimental.stop()
        paths = [os.path.join(d, f) for d, _, files in os.walk(logdir) for f in files
                 if f.endswith(".xplane.pb")]
        data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        return {}
    table = json.loads(data)[0] if data.startswith(b"[") else json.loads(data)
    ids = [c["id"] for c in table["cols"]]
    by_type = {}
    for r in table["rows"]:
        cells = dict(zip(ids, (c.get("v") for c in r["c"])))
        if str(cells.get("operation", "")).startswith("IDLE"):
            continue
        by_type[cells["type"]] = by_type.get(cells["type"], 0.0) + float(cells["total_self_time"])
    total = sum(by_type.values()) or 1.0
    ranked = sorted(by_type.items(), key=lambda kv: -kv[1])
    return {"total_self_us_per_step": total / steps,
            "top": [(t, v / total) for t, v in ranked[:top]]}


def investigate(model_name, config, data, batch_size=64, windows=6, window_steps=5):
    """Before/after ratios (B time / A time, < 1 = faster) of candidate changes, each with
    interleaved windows in this process, and whether the change alters scores."""
    import numpy as np
    import tensorflow as tf

    from anomaly_toolbox import training
    from anomaly_toolbox.preprocessing import train_dataset

    out = {"model": model_name, "profile": config.get("profile", "")}
    batches = real_batches(data.x_train, batch_size)
    probe = real_batches(data.x_val, batch_size, 1)[0]

    # Op-type profile of the step as training runs it (determinism on, no XLA).
    base = build(model_name, config["model"])
    step = tf.function(base.train_step)
    for b in batches[:2]:
        _sync(step(b))
    out["op_profile"] = op_profile(step, batches)

    def a_b(name, fn_a, fn_b, note=""):
        try:
            for fn in (fn_a, fn_b):
                _sync(fn(0))
                _sync(fn(1))
            a, b, ratio = interleaved_ratio(fn_a, fn_b, windows, window_steps)
        except Exception as e:  # a candidate that does not run is a finding too
            out.setdefault("ab", []).append({"change": name, "before_s": float("nan"),
                                             "after_s": float("nan"), "ratio": float("nan"),
                                             "note": f"failed: {type(e).__name__}: {str(e)[:150]}"})
            return
        out.setdefault("ab", []).append({"change": name, "before_s": a, "after_s": b,
                                         "ratio": ratio, "note": note})

    # XLA: two identical models, K steps each on the same batches, then compare scores.
    xla_model = build(model_name, config["model"])
    xla_step = tf.function(xla_model.train_step, jit_compile=True)
    ref = build(model_name, config["model"])
    ref_step = tf.function(ref.train_step)
    try:
        for b in batches[:3]:
            ref_step(b)
            xla_step(b)
        ref_scores = ref.score(probe).numpy()
        diff = float(np.max(np.abs(ref_scores - xla_model.score(probe).numpy())))
        scale = float(np.max(np.abs(ref_scores)))
    except Exception:  # reported by a_b below
        diff = scale = float("nan")
    a_b("XLA: tf.function(train_step, jit_compile=True)",
        lambda i: ref_step(batches[i % len(batches)]),
        lambda i: xla_step(batches[i % len(batches)]),
        f"max |score diff| after 3+ steps {diff:.2g} (scores up to {scale:.2g})")

    # Op determinism off (training.py turns it on; it also makes keras fit skip XLA).
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()
    nd = build(model_name, config["model"], deterministic=False)
    nd_step = tf.function(nd.train_step)
    for b in batches[:2]:
        nd_step(b)
    fit_jit = bool(nd.jit_compile)
    tf.config.experimental.enable_op_determinism()

    def det_on(i):
        tf.config.experimental.enable_op_determinism()
        return ref_step(batches[i % len(batches)])

    def det_off(i):
        tf_config.disable_op_determinism()
        return nd_step(batches[i % len(batches)])

    a_b("op determinism off (raw step)", det_on, det_off,
        f"keras would then compile fit with jit_compile={fit_jit}")
    tf.config.experimental.enable_op_determinism()

    # keras fit: the per-batch NaN callback vs none (a callback with on_train_batch_end makes
    # fit convert the logs to numbers after every batch).
    x_fit = data.x_train[:window_steps * batch_size]
    stop = training._StopOnNonFinite()
    base.fit(train_dataset(x_fit, batch_size, 0, 0), epochs=1, verbose=0, callbacks=[stop])

    def fit_with(callbacks):
        def run(i):
            if i % window_steps:
                return tf.constant(0.0)
            base.fit(train_dataset(x_fit, batch_size, 0, i), epochs=1, verbose=0,
                     callbacks=callbacks)
            return tf.constant(0.0)
        return run

    a_b("keras fit without the per-batch _StopOnNonFinite callback", fit_with([stop]),
        fit_with([]), "check the epoch's losses for NaN once instead")
    a_b("raw tf.function step instead of keras fit (per batch)", fit_with([stop]),
        lambda i: step(batches[i % len(batches)]), "fit includes the tf.data pipeline")
    return out


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
        "of matmul | of conv | score img/s (SavedModel) | outside steps (fit / val / ckpt / log) |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        outside = (f"{100 * r['outside_share']:.1f}% ("
                   f"{100 * r['outside_fit_overhead_share']:.1f} / "
                   f"{100 * r['outside_validation_share']:.1f} / "
                   f"{100 * r['outside_checkpoints_share']:.1f} / "
                   f"{100 * r['outside_logging_share']:.2f})") if "outside_share" in r else "—"
        score = _fmt(r.get("score_img_s")) + (f" ({r['score_note']})" if r.get("score_note") else "")
        lines.append(
            f"| {r['model']} | {r['profile']} | {'/'.join(map(str, r['filters']))} | "
            f"{_fmt(r['train_img_s'])} | {_fmt(r['flops_per_img'] / 1e6)} | {_fmt(r['gflops'])} | "
            f"{100 * r.get('of_matmul', 0):.0f}% | {100 * r.get('of_conv', 0):.0f}% | {score} | "
            f"{outside} |")
    lines += ["", "train img/s: tf.function(model.train_step) on real MNIST batches of "
              f"{rows[0]['batch_size'] if rows else '?'}, after warm-up, median of windows. "
              "FLOPs: one train step's concrete-function graph counted by tf.compat.v1.profiler "
              "(float_operation: Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter, MatMul and "
              "element-wise ops, fixed batch shape), / batch. Outside steps: share of an "
              "estimated full pooled-MNIST epoch (class 0 split) spent outside raw train steps: "
              "keras fit's extra per-batch cost (tf.data pipeline, callbacks, logs), validation "
              "scoring (training.score_images, extrapolated from a sample), the best+last "
              "checkpoint saves and the TensorBoard scalars."]
    if rows:
        lines += ["", "| model | profile | epoch (est.) | raw step | fit step | conv+matmul "
                  "share of FLOPs | fit jit_compile |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            if "epoch_s" not in r:
                continue
            lines.append(f"| {r['model']} | {r['profile']} | {r['epoch_s']:.0f} s "
                         f"({r['steps_per_epoch']} steps) | {1e3 * r['raw_step_s']:.0f} ms | "
                         f"{1e3 * r['fit_step_s']:.0f} ms | "
                         f"{100 * r['conv_matmul_flop_share']:.1f}% | {r['fit_jit_compile']} |")
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

def main(argv):
    del argv
    import platform

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import datasets, protocols, registry
    from anomaly_toolbox.files import write_atomic

    models = FLAGS.models or registry.names()
    load_before = load_average()
    raw = datasets.load("mnist", FLAGS.data_dir)
    splits = protocols.make_splits(raw, 0, "pooled", 0)
    print(f"{load_before}\nceiling ...", flush=True)
    ceiling = measure_ceiling(FLAGS.windows, FLAGS.ceiling_steps, FLAGS.matmul_size)
    print(json.dumps(ceiling), flush=True)
    rows, investigations = [], []
    for profile in FLAGS.profiles:
        for name in models:
            cfg = config_lib.resolve(registry.get(name),
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
            if FLAGS.investigate:
                inv = investigate(name, cfg, splits, FLAGS.batch_size)
                investigations.append(inv)
                print(json.dumps(inv, default=str), flush=True)
    meta = {"command": "python -m anomaly_toolbox.speed " + " ".join(
                f"--{k}={','.join(v) if isinstance(v, list) else v}"
                for k, v in (("models", models), ("profiles", FLAGS.profiles),
                             ("batch_size", FLAGS.batch_size), ("windows", FLAGS.windows),
                             ("window_steps", FLAGS.window_steps),
                             ("investigate", FLAGS.investigate))),
            "load": load_before, "load_after": load_average(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, TF {tf.__version__}"}
    text = render(rows, ceiling, meta, investigations)
    print(text)
    write_atomic(FLAGS.output, text)
    if FLAGS.json_output:
        write_atomic(FLAGS.json_output, json.dumps(
            {"ceiling": ceiling, "rows": rows, "investigations": investigations, **meta},
            indent=1, default=str) + "\n")


if __name__ == "__main__":
    app.run(main)
