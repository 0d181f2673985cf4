"""A model's train step with one of keras' layers beside the `blocks` layer that replaces it, in
one process: both models start from the same weights, the weights after one step are compared,
then the two steps are timed in interleaved rounds. `Dense`: the input gradient as (W · dyᵀ)ᵀ
(EGBAD's dense layers); `BatchNormalization`: TensorFlow's fused kernel (every model's).

    python -m benchmarks.blocks_vs_keras --layer=BatchNormalization --models=ganomaly,egbad \
        --precisions=float32,mixed_bfloat16 --data_dir=../shared/data [--pause=PID,...]
"""

import statistics
from functools import partial

from absl import flags

from anomaly_toolbox import cli
from benchmarks.grid_flags import refuse_repeated_flags
from benchmarks.timing import paused

FLAGS = flags.FLAGS
LAYERS = ("Dense", "BatchNormalization")


def define_flags():
    flags.DEFINE_enum("layer", "Dense", LAYERS, "The blocks layer to compare with keras' own.")
    flags.DEFINE_list("models", ["egbad"], "Models whose train step is timed.")
    flags.DEFINE_string("profile", "paper", "The models' budget profile (their widths).")
    flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precisions to compare in.")
    flags.DEFINE_integer("rounds", 5, "Interleaved rounds; each times both steps once.")
    flags.DEFINE_integer("steps", 30, "Steps per timed window.")
    flags.DEFINE_list("pause", [], "PIDs whose process groups are stopped while timing.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")


def compare(precision, profile, rounds, steps, data_dir, batch_size=64, layer="Dense",
            model_name="egbad"):
    """{max_weight_diff, img_s: {keras, blocks}, ratio} for one precision."""
    import numpy as np
    from keras import layers

    from anomaly_toolbox.models import blocks
    from anomaly_toolbox.models.precision import policy
    from benchmarks.timing import sync, timed_windows
    from benchmarks.workload import build, compiled_step, config, pooled_splits, real_batches

    cfg = config(model_name, profile)
    batches = real_batches(pooled_splits(data_dir).x_train, batch_size)
    ours, built = getattr(blocks, layer), {}
    try:
        for name, cls in (("keras", getattr(layers, layer)), ("blocks", ours)):
            setattr(blocks, layer, cls)
            with policy(precision):
                built[name] = build(model_name, cfg["model"])
    finally:
        setattr(blocks, layer, ours)
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
        for model_name in FLAGS.models:
            for precision in FLAGS.precisions:
                r = compare(precision, FLAGS.profile, FLAGS.rounds, FLAGS.steps, FLAGS.data_dir,
                            layer=FLAGS.layer, model_name=model_name)
                print(f"{model_name} {precision}: keras {FLAGS.layer} {r['img_s']['keras']:.0f} "
                      f"img/s, blocks.{FLAGS.layer} {r['img_s']['blocks']:.0f} img/s "
                      f"({r['ratio']:.2f}x); weights after one step from equal weights differ "
                      f"by {r['max_weight_diff']:.1e}", flush=True)


if __name__ == "__main__":
    cli.main(define_flags, body, partial(refuse_repeated_flags, "models", "precisions"))
