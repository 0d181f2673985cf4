"""The part of a training epoch spent outside train steps, estimated for the real split sizes
and timed as run/training.py spends it: keras fit's cost per batch beyond the raw step,
validation scoring, the two checkpoint saves and the TensorBoard scalars. A fast step is worth
little if the epoch's time goes elsewhere."""

import statistics
import time

from anomaly_toolbox.bench.timing import BatchClock, timed_windows
from anomaly_toolbox.bench.workload import SLOW_SEARCH_STEPS


def warm_fit(model, x_fit, batch_size):
    """Builds keras' train_function with a short fit; returns the per-batch NaN callback that
    run/training.py passes to fit, for the timed fits."""
    from anomaly_toolbox.data.preprocessing import train_dataset
    from anomaly_toolbox.run.callbacks import StopOnNonFinite

    stop = StopOnNonFinite()
    model.fit(train_dataset(x_fit[:2 * batch_size], batch_size, 0, 0), epochs=1, verbose=0,
              shuffle=False, callbacks=[stop])
    return stop


def outside_step(model, step, batches, splits, batch_size, windows, fit_batches, val_sample,
                 tmpdir, slow_score_images=16):
    """Per-epoch seconds outside train steps, as a training epoch spends them, for the real
    split sizes: keras fit per batch beyond the raw step (from timed short fits), validation
    scoring (extrapolated from val_sample images), two checkpoint saves, the scalar log."""
    import numpy as np

    from anomaly_toolbox import metrics
    from anomaly_toolbox.data.preprocessing import train_dataset
    from anomaly_toolbox.run.rundir import RunDir
    from anomaly_toolbox.run.checkpoints import checkpoint_managers
    from anomaly_toolbox.run.scoring import score_images

    x_fit = splits.x_train[:fit_batches * batch_size]
    fit_batches = len(x_fit) // batch_size
    x_fit = x_fit[:fit_batches * batch_size]
    stop = warm_fit(model, x_fit, batch_size)
    fit_s, fixed_s, raw_s = [], [], []
    for w in range(max(1, min(windows, 3))):
        clock = BatchClock()
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
    score_images(model, x_val[:8])  # traces the scorer
    t0 = time.perf_counter()
    scores = score_images(model, x_val)
    val_per_image = (time.perf_counter() - t0) / len(x_val)
    fake = np.random.default_rng(0).normal(size=len(splits.y_val))
    t0 = time.perf_counter()
    metrics.ranking_metrics(fake, splits.y_val)
    val_metrics_s = time.perf_counter() - t0
    del scores

    state, last, best = checkpoint_managers(model, RunDir(tmpdir))
    ckpt = []
    for _ in range(2):
        t0 = time.perf_counter()
        best.save()
        last.save()
        ckpt.append(time.perf_counter() - t0)
    writer = RunDir(tmpdir).summary_writer()  # what training logs with (flush checked)
    t0 = time.perf_counter()
    writer.write(1, scalars={"loss": 1.0, "val/auprc": 0.5, "val/auroc": 0.5})
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
