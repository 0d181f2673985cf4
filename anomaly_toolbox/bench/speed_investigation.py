"""Why a model's train step is as fast as it is (speed --investigate): where the step's time
goes by op type, from a TF profiler trace, and before/after ratios of candidate changes (XLA,
op determinism, keras fit's per-batch callback, fit itself), each timed with interleaved
windows in one process and reported with the score difference it causes."""

import json
import os
import statistics
import tempfile

from anomaly_toolbox.bench.epoch_overhead import warm_fit
from anomaly_toolbox.bench.timing import BatchClock, interleaved_ratio, sync, timed_windows
from anomaly_toolbox.bench.workload import SLOW_SEARCH_STEPS, build, real_batches


def op_profile(step, batches, steps=5, top=12):
    """Self-time share per op type over `steps` train steps, from a TF profiler trace."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    with tempfile.TemporaryDirectory(prefix="speed-trace-") as logdir:
        tf.profiler.experimental.start(logdir)
        for i in range(steps):
            out = step(batches[i % len(batches)])
        sync(out)
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

    from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, train_dataset

    out = {"model": model_name, "profile": config.get("profile", "")}
    batches = real_batches(data.x_train, batch_size)
    probe = real_batches(data.x_val, batch_size, 1)[0]

    # Op-type profile of the step as training runs it (determinism on, no XLA).
    base = build(model_name, config["model"])
    step = tf.function(base.train_step)
    for b in batches[:2]:
        sync(step(b))
    out["op_profile"] = op_profile(step, batches)

    def a_b(name, fn_a, fn_b, note=""):
        try:
            for fn in (fn_a, fn_b):
                sync(fn(0))
                sync(fn(1))
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

    # Op determinism off (run/training.py turns it on).
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
    stop = warm_fit(base, x_fit, batch_size)

    def fit_per_batch(extra):
        def run(w):
            clock = BatchClock()
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

