"""EGBAD's train step with keras' Dense beside `blocks.Dense` (input gradient as (W · dyᵀ)ᵀ), in
one process: both models start from the same weights, the weights after one step are compared,
then the two steps are timed in interleaved rounds.

    python -m benchmarks.dense_gradient --precisions=float32,mixed_bfloat16 \
        --data_dir=../shared/data [--pause=PID,...]
"""

import statistics

from absl import flags

from anomaly_toolbox import cli
from benchmarks.timing import paused

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("profile", "paper", "EGBAD's budget profile (its widths).")
    flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precisions to compare in.")
    flags.DEFINE_integer("rounds", 5, "Interleaved rounds; each times both steps once.")
    flags.DEFINE_integer("steps", 30, "Steps per timed window.")
    flags.DEFINE_list("pause", [], "PIDs whose process groups are stopped while timing.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")


def compare(precision, profile, rounds, steps, data_dir, batch_size=64):
    """{max_weight_diff, img_s: {keras, blocks}, ratio} for one precision."""
    import numpy as np
    from keras import layers

    from anomaly_toolbox.models import blocks
    from anomaly_toolbox.models.precision import policy
    from benchmarks.timing import sync, timed_windows
    from benchmarks.workload import build, compiled_step, config, pooled_splits, real_batches

    cfg = config("egbad", profile)
    batches = real_batches(pooled_splits(data_dir).x_train, batch_size)
    ours, built = blocks.Dense, {}
    try:
        for name, dense in (("keras", layers.Dense), ("blocks", ours)):
            blocks.Dense = dense
            with policy(precision):
                built[name] = build("egbad", cfg["model"])
    finally:
        blocks.Dense = ours
    steps_of = {name: compiled_step(model) for name, model in built.items()}
    for a, b in zip(built["keras"].weights, built["blocks"].weights):
        b.assign(a)
    for step in steps_of.values():
        sync(step(batches[0]))
    diff = max(float(np.abs(a.numpy().astype(np.float64) - b.numpy()).max())
               for a, b in zip(built["keras"].weights, built["blocks"].weights))
    seconds = {name: [] for name in steps_of}
    for r in range(rounds):
        for name in sorted(steps_of, reverse=r % 2 == 1):
            seconds[name] += timed_windows(
                lambda i: steps_of[name](batches[i % len(batches)]), 1, steps)
    img_s = {name: batch_size * steps / statistics.median(s) for name, s in seconds.items()}
    return {"max_weight_diff": diff, "img_s": img_s, "ratio": img_s["blocks"] / img_s["keras"]}


def body():
    with paused(FLAGS.pause):
        for precision in FLAGS.precisions:
            r = compare(precision, FLAGS.profile, FLAGS.rounds, FLAGS.steps, FLAGS.data_dir)
            print(f"{precision}: keras Dense {r['img_s']['keras']:.0f} img/s, blocks.Dense "
                  f"{r['img_s']['blocks']:.0f} img/s ({r['ratio']:.2f}x); weights after one "
                  f"step from equal weights differ by {r['max_weight_diff']:.1e}", flush=True)


if __name__ == "__main__":
    cli.main(define_flags, body)
