"""Speed report (a benchmark script, not a timed test): where the training and scoring time goes.

  python -m anomaly_toolbox.speed --models=ganomaly,egbad --profiles=cpu,paper

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
"""

import json
import os
import statistics
import subprocess
import tempfile
import time

from absl import app, flags

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

def measure_ceiling(windows=5, steps=3, matmul_size=2048, conv_shape=CONV_CEILING_SHAPE,
                    kinds=("matmul", "conv", "conv_input_grad", "conv_filter_grad")):
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
        if key not in kinds:
            continue
        _sync(fn())  # trace + warm-up
        seconds = timed_windows(lambda i: fn(), windows, steps)
        result[f"{key}_gflops"] = flops * steps / statistics.median(seconds) / 1e9
    return result


# ------------------------------------------------------------------------------------- FLOPs

def count_flops(concrete_fn):
    """(total, {op type: flops}, whole-graph total) of one execution of a concrete function's
    graph, from TF's registered "flops" op statistics (the ones tf.compat.v1.profiler sums;
    its whole-graph total is returned too, for comparison)."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.profiler.internal import flops_registry  # noqa: F401 (registers)

    graph = concrete_fn.graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph_total = tf.compat.v1.profiler.profile(graph=graph, cmd="op",
                                                options=options).total_float_ops
    # The graph also holds gradient ops nothing uses (tf.GradientTape's Conv2D gradient builds
    # the input AND the filter gradient even when only one is needed, e.g. D's filter gradients
    # inside G's loss): TF prunes them when it runs the function, so count only the ops that
    # the outputs or a side effect (variable updates) depend on.
    live, todo = set(), [t.op for t in graph.outputs] + list(graph.control_outputs) + [
        op for op in graph.get_operations() if op._is_stateful and not op.outputs]
    while todo:
        op = todo.pop()
        if op.name in live:
            continue
        live.add(op.name)
        todo.extend(t.op for t in op.inputs)
        todo.extend(op.control_inputs)
    by_type = {}
    for op in graph.get_operations():
        if op.name not in live:
            continue
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # no shape or no statistics registered
            value = None
        if value:
            by_type[op.type] = by_type.get(op.type, 0) + int(value)
    return int(sum(by_type.values())), by_type, int(graph_total)


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
    model = models.get(model_name)(**model_config, channels=1)
    model.compile()
    return model


def real_batches(images, batch_size, count=8):
    """`count` distinct preprocessed batches of real MNIST images, cycled by the timers."""
    from anomaly_toolbox.data.preprocessing import to_model_input

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


class _BatchClock:
    """keras callback: the time at which each batch of fit ends."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

            def gaps(self):
                return [b - a for a, b in zip(self.ends[1:], self.ends[2:])]

        return Clock()


def _outside_step(model, step, batches, splits, batch_size, windows, fit_batches, val_sample,
                  tmpdir, slow_score_images=16):
    """Per-epoch seconds outside train steps, as training._train spends them, for the real
    split sizes: keras fit per batch beyond the raw step (from timed short fits), validation
    scoring (extrapolated from val_sample images), two checkpoint saves, the scalar log."""
    import numpy as np
    import tensorflow as tf

    from anomaly_toolbox import metrics, training
    from anomaly_toolbox.data.preprocessing import train_dataset

    x_fit = splits.x_train[:fit_batches * batch_size]
    fit_batches = len(x_fit) // batch_size
    x_fit = x_fit[:fit_batches * batch_size]
    stop = training._StopOnNonFinite()
    model.fit(train_dataset(x_fit[:2 * batch_size], batch_size, 0, 0), epochs=1, verbose=0,
              shuffle=False, callbacks=[stop])  # builds keras' train_function
    fit_s, fixed_s, raw_s = [], [], []
    for w in range(max(1, min(windows, 3))):
        clock = _BatchClock()
        t0 = time.perf_counter()
        model.fit(train_dataset(x_fit, batch_size, 0, w), epochs=1, verbose=0, shuffle=False,
                  callbacks=[stop, clock])
        total = time.perf_counter() - t0
        # per batch in steady state (median gap between batch ends), and the per-fit-call
        # constant (iterator and adapter setup, first pipeline fill, epoch end)
        per_batch = statistics.median(clock.gaps()) if len(clock.ends) > 2 else total / fit_batches
        fit_s.append(per_batch)
        fixed_s.append(max(total - per_batch * fit_batches, 0.0))
        raw_s.append(timed_windows(lambda i: step(batches[i % len(batches)]), 1,
                                   fit_batches)[0] / fit_batches)
    fit_step, fit_fixed, raw_step = (statistics.median(fit_s), statistics.median(fixed_s),
                                     statistics.median(raw_s))

    if getattr(model, "search_steps", 0) >= SLOW_SEARCH_STEPS:
        val_sample = min(val_sample, slow_score_images)
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

    state, last, best = training.checkpoint_managers(model, tmpdir)
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
    parts = {"fit_overhead": steps * max(fit_step - raw_step, 0.0) + fit_fixed,
             "validation": val_per_image * len(splits.y_val) + val_metrics_s,
             "checkpoints": min(ckpt), "logging": log_s}
    epoch = steps * raw_step + sum(parts.values())
    return {"epoch_s": epoch, "steps_per_epoch": steps, "fit_step_s": fit_step,
            "fit_fixed_s": fit_fixed,
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
        row.update(_outside_step(model, step, batches, data, batch_size, windows, fit_batches,
                                 val_sample, tmpdir, slow_score_images))
        row.update(_score_saved_model(model, model_name, config, data.x_test, windows,
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


def investigate(model_name, config, data, batch_size=64, windows=6, window_steps=5,
                fit_batches=20):
    """Before/after ratios (B time / A time, < 1 = faster) of candidate changes, each with
    interleaved windows in this process, and whether the change alters scores."""
    import numpy as np
    import tensorflow as tf

    from anomaly_toolbox import training
    from anomaly_toolbox.data.preprocessing import train_dataset

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

    # XLA: two identical models, 3 steps each on the same batches, then compare scores.
    ref = build(model_name, config["model"])
    ref_step = tf.function(ref.train_step)
    for b in batches[:3]:
        ref_step(b)
    ref_scores = ref.score(probe).numpy()
    scale = float(np.max(np.abs(ref_scores)))

    def score_diff(other):
        diff = np.max(np.abs(ref_scores - other.score(probe).numpy()))
        return f"max |score diff| after 3 steps {diff:.2g} (scores up to {scale:.2g})"

    xla_model = build(model_name, config["model"])
    xla_step = tf.function(xla_model.train_step, jit_compile=True)
    try:
        for b in batches[:3]:
            xla_step(b)
        xla_note = score_diff(xla_model)
    except Exception:  # reported by a_b below
        xla_note = ""
    a_b("XLA: tf.function(train_step, jit_compile=True)",
        lambda i: ref_step(batches[i % len(batches)]),
        lambda i: xla_step(batches[i % len(batches)]), xla_note)

    # Op determinism off (training.py turns it on).
    from tensorflow.python.framework import config as tf_config

    nd = build(model_name, config["model"], deterministic=False)
    nd_step = tf.function(nd.train_step)
    for b in batches[:3]:
        nd_step(b)
    det_note = score_diff(nd)
    tf.config.experimental.enable_op_determinism()

    def det_on(i):
        tf.config.experimental.enable_op_determinism()
        return ref_step(batches[i % len(batches)])

    def det_off(i):
        tf_config.disable_op_determinism()
        return nd_step(batches[i % len(batches)])

    a_b("op determinism off (raw step)", det_on, det_off, det_note)
    tf.config.experimental.enable_op_determinism()

    # keras fit, per batch in steady state (median gap between batch ends, so the per-fit-call
    # setup is left out): with and without the per-batch _StopOnNonFinite callback (it turns
    # every batch's losses into Python floats), and against the raw step.
    x_fit = data.x_train[:fit_batches * batch_size]
    stop = training._StopOnNonFinite()
    base.fit(train_dataset(x_fit[:2 * batch_size], batch_size, 0, 0), epochs=1, verbose=0,
             shuffle=False, callbacks=[stop])

    def fit_per_batch(extra):
        def run(w):
            clock = _BatchClock()
            base.fit(train_dataset(x_fit, batch_size, 0, w), epochs=1, verbose=0,
                     shuffle=False, callbacks=extra + [clock])
            return statistics.median(clock.gaps())
        return run

    def raw_per_batch(w):
        return timed_windows(lambda i: step(batches[i % len(batches)]), 1,
                             fit_batches)[0] / fit_batches

    def a_b_per_unit(name, run_a, run_b, note=""):
        a, b = [], []
        for w in range(max(3, windows // 2)):
            for run, acc in ((run_a, a), (run_b, b)) if w % 2 == 0 else ((run_b, b), (run_a, a)):
                acc.append(run(w))
        ratios = [y / x for x, y in zip(a, b)]
        out.setdefault("ab", []).append({"change": name, "before_s": statistics.median(a),
                                         "after_s": statistics.median(b),
                                         "ratio": statistics.median(ratios), "note": note})

    # Scoring (validation every epoch, test, SavedModel) with XLA: same model, same images.
    from anomaly_toolbox.data.preprocessing import IMAGE_SIZE

    slow = getattr(ref, "search_steps", 0) >= SLOW_SEARCH_STEPS
    x_score = probe[:8] if slow else probe
    spec = [tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, None])]
    plain = tf.function(ref.score, input_signature=spec)
    xla = tf.function(ref.score, input_signature=spec, jit_compile=True)
    try:
        d = float(np.max(np.abs(plain(x_score).numpy() - xla(x_score).numpy())))
        s_scale = float(np.max(np.abs(plain(x_score).numpy())))
        note = f"same weights: max |score diff| {d:.2g} (scores up to {s_scale:.2g})"
    except Exception:
        note = ""
    saved = window_steps
    window_steps = 1 if slow else 2
    a_b(f"score with jit_compile=True ({int(x_score.shape[0])} images per call)",
        lambda i: plain(x_score), lambda i: xla(x_score), note)
    window_steps = saved

    a_b_per_unit("keras fit without the per-batch _StopOnNonFinite callback",
                 fit_per_batch([stop]), fit_per_batch([]),
                 "steady-state s/batch; check the epoch's losses for NaN once instead")
    a_b_per_unit("raw tf.function step instead of keras fit (per batch)",
                 fit_per_batch([stop]), raw_per_batch,
                 "steady-state s/batch; fit also runs the tf.data pipeline")
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

def main(argv):
    del argv
    import platform

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import datasets, protocols, registry, report
    from anomaly_toolbox.files import write_atomic

    models = FLAGS.models or models.names()
    load_before = load_average()
    raw = datasets.load("mnist", FLAGS.data_dir)
    splits = protocols.make_splits(raw, 0, "pooled", 0)
    print(f"{load_before}\nceiling ...", flush=True)
    ceiling = measure_ceiling(FLAGS.windows, FLAGS.ceiling_steps, FLAGS.matmul_size)
    print(json.dumps(ceiling), flush=True)
    rows, investigations = [], []
    for profile in FLAGS.profiles:
        for name in models:
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
    meta = {"command": "python -m anomaly_toolbox.speed " + " ".join(
                f"--{k}={','.join(v) if isinstance(v, list) else v}"
                for k, v in (("models", models), ("profiles", FLAGS.profiles),
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
    define_flags()
    app.run(main)
